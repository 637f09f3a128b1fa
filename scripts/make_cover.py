"""Draw the book's cover figure, book/_static/cover.png: one 5-way 1-shot episode of
Omniglot characters from alphabets a learner trained on background_small1 never saw.

    METABOOK_DATA=../shared/data python scripts/make_cover.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import metabook as mb  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "book" / "_static" / "cover.png"


def main() -> None:
    train = mb.data.Omniglot("background_small1")
    test = mb.data.Omniglot("background_small2")
    sampler = mb.data.EpisodeSampler(
        test, ways=5, shots=1, queries=2, classes=test.classes_outside(train.alphabets), seed=3
    )
    episode = sampler.sample()
    order = [0, 9, 3, 6, 1, 7, 4, 2, 8, 5]  # the queries shuffled, as a learner meets them
    fig, axes = plt.subplots(2, 10, figsize=(10, 2.6), layout="constrained")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for k in range(5):
        ax = axes[0, 2 * k]
        ax.imshow(episode.support_x[k, 0], cmap="gray_r")
        ax.set_title(f"class {k}", fontsize=10)
        for side in ax.spines.values():
            side.set_color("#1f4e79")
            side.set_linewidth(2.5)
        axes[0, 2 * k + 1].axis("off")
    for j, q in enumerate(order):
        axes[1, j].imshow(episode.query_x[q, 0], cmap="gray_r")
        axes[1, j].set_title("?", fontsize=10, color="#b35c00")
    axes[0, 0].set_ylabel("support", fontsize=10)
    axes[1, 0].set_ylabel("queries", fontsize=10)
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
