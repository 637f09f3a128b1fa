"""Inductive evaluation (each query alone): adapting once per episode against once per query.

    python benchmarks/inductive_evaluation.py [--device cpu|cuda] [--episodes 20] [--repeats 5]

``evaluate(..., transductive=False)`` calls the learner's ``predict_each``: each query
predicted beside the support set (in one batch with it, so that BatchNorm normalises it with
the support set's statistics and its own). Done naively, that adapts a MAML or a Meta-LSTM
once per query, on each single-query episode; the learners that adapt to the support set
alone adapt once per episode and predict the queries one by one. This script times both on the
same 5-way 1-shot Omniglot-shaped episodes (5 queries a class, Conv4 as in chapters 3 and
5), alternating the two in one process, and reports the median seconds per episode, their
ratio, and whether the predictions are equal.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import metabook as mb
from metabook.learners.base import FewShotLearner


def episodes(count: int, device: torch.device) -> list[mb.data.Episode]:
    data = torch.utils.data.TensorDataset(torch.rand(200, 1, 28, 28), torch.arange(20).repeat(10))
    sampler = mb.data.EpisodeSampler(data, 5, 1, 5, seed=0)
    return [e.to(device) for e in sampler.episodes(count)]


def per_query(learner: FewShotLearner, episode: mb.data.Episode) -> torch.Tensor:
    """The naive way: adapt anew for each query, on its single-query episode."""
    return torch.cat([type(learner).predict_each(learner, one) for one in episode.single_queries()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = mb.pick_device(args.device)
    mb.seed_everything(0)
    learners = {
        "MAML, 3 test steps": mb.MAML(mb.models.Conv4(out_features=5), test_steps=3),
        "Meta-LSTM, 5 steps": mb.MetaLSTM(
            mb.models.Conv4(out_features=5, channels=32), inner_steps=5
        ),
        "Reptile, 10 test steps": mb.Reptile(mb.models.Conv4(out_features=5), test_steps=10),
    }
    test = episodes(args.episodes, device)
    for name, learner in learners.items():
        learner.to(device).eval()
        ways = {"once per query": per_query, "once per episode": type(learner).predict_each}
        times: dict[str, list[float]] = {way: [] for way in ways}
        outputs: dict[str, torch.Tensor] = {}
        for _ in range(args.repeats):
            for way, predict in ways.items():  # alternating, in one process
                start = time.perf_counter()
                outputs[way] = torch.stack([predict(learner, e) for e in test])
                times[way].append((time.perf_counter() - start) / len(test))
        medians = {way: statistics.median(t) for way, t in times.items()}
        print(
            json.dumps(
                {
                    "learner": name,
                    "seconds per episode": {w: round(m, 4) for w, m in medians.items()},
                    "speed-up": round(medians["once per query"] / medians["once per episode"], 1),
                    "equal predictions": bool(torch.equal(*outputs.values())),
                }
            )
        )
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
