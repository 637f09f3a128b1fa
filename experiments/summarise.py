"""Print recorded results as Markdown tables::

    python experiments/summarise.py small1-base small2-base small1-transfer
    python experiments/summarise.py optimisation-methods

A comparison of ``experiments/methods.py`` is printed as the chapters show it
(``metabook.results.comparison_table``); a choice on validation
(``experiments/transfer_validation.py``) as its grid, one row per setting. For results of
``experiments/omniglot_runs.py``:

One row per result: its validation figure (mean over seeds with Student's t interval of
the per-seed means) and, where the official runs were scored, the test accuracy in both
regimes (all queries of a run at once; each query alone), as percentages; one more row for
the ensemble of the seeds' models where it was scored.
"""

from __future__ import annotations

import argparse

from metabook import results


def cell(entry: dict | None, seeds: list[dict], key: str) -> str:
    """``mean ± interval`` over seeds, or the one seed's value."""
    if entry is not None:
        return f"{100 * entry['mean']:.1f} ± {100 * entry['ci95']:.1f}"
    if key in seeds[0]:
        return f"{100 * seeds[0][key]:.1f} (one seed)"
    return "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    recorded = {name: results.load_result(name) for name in args.names}
    comparisons = [n for n, r in recorded.items() if "methods" in r]
    for name in comparisons:
        print(f"{name}:\n\n{results.comparison_table(recorded[name])}\n")
    grids = [n for n, r in recorded.items() if "grid" in r]
    for name in grids:
        print(f"{name}:\n\n| head | setting | validation accuracy (%) |\n| --- | --- | --- |")
        for head, rows in recorded[name]["grid"].items():
            for row in rows:
                setting = ", ".join(f"{k} {v}" for k, v in row.items() if k not in ("mean", "ci95"))
                print(
                    f"| {head} | {setting or '-'} | "
                    f"{100 * row['mean']:.1f} ± {100 * row['ci95']:.1f} |"
                )
        print(f"\nchosen: {recorded[name]['chosen']}\n")
    runs = [n for n in args.names if n not in comparisons and n not in grids]
    if not runs:
        return
    columns = ["result", "method", "data", "seeds", "validation", "test (runs together)"]
    print("| " + " | ".join([*columns, "test (each query alone)"]) + " |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in runs:
        r = recorded[name]
        seeds = r["seeds"]
        print(
            f"| {name} | {r['config']['method']} | {r['config']['data']['dataset']} | "
            f"{len(seeds)} | {cell(r['validation'], seeds, 'validation')} | "
            f"{cell(r.get('test'), seeds, 'test')} | "
            f"{cell(r.get('test_inductive'), seeds, 'test_inductive')} |"
        )
        together = r.get("ensemble")
        if together:
            figures = [
                f"{100 * together[k]:.1f} (one ensemble)" if k in together else "-"
                for k in ("validation", "test", "test_inductive")
            ]
            print(
                f"| {name}, ensemble | {r['config']['method']} x {len(seeds)} | "
                f"{r['config']['data']['dataset']} | {len(seeds)} | " + " | ".join(figures) + " |"
            )


if __name__ == "__main__":
    main()
