"""Squared against plain Euclidean distance in ProtoNet, and the logit scale (chapter 4).

Trains a ProtoNet (Conv4) for 1,000 20-way 1-shot episodes on ``background_small1`` with
rotations, exactly as chapter 4 does with its CPU settings, with one distance and one scale,
and evaluates it on 300 20-way 1-shot episodes of the held-out ``background_small2``
alphabets, across and within alphabets::

    python benchmarks/protonet_distance_scale.py --distance sqeuclidean --scale 1.0
    python benchmarks/protonet_distance_scale.py --distance sqeuclidean --scale 0.1
    python benchmarks/protonet_distance_scale.py --distance sqeuclidean --scale 0.01
    python benchmarks/protonet_distance_scale.py --distance euclidean --scale 1.0

Results in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import time

import metabook as mb
from metabook.data import EpisodeSampler, Omniglot
from metabook.models import Conv4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distance", default="sqeuclidean")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    train = Omniglot("background_small1", rotations=True)
    test = Omniglot("background_small2")
    held = [c for c, n in enumerate(test.classes) if n.split("/")[0] not in set(train.alphabets)]
    mb.seed_everything(0)
    learner = mb.ProtoNet(Conv4(), distance=args.distance, scale=args.scale)
    mb.seed_everything(0)
    start = time.perf_counter()
    tasks = EpisodeSampler(train, 20, 1, 5, seed=0)
    mb.meta_train(learner, tasks, steps=args.steps, device=args.device, progress=False)
    seconds = time.perf_counter() - start
    scores = {}
    for name, groups in (("across", None), ("within", test.class_alphabet)):
        sampler = EpisodeSampler(test, 20, 1, 5, classes=held, groups=groups)
        scores[name] = mb.evaluate(learner, sampler.episodes(300, seed=1))
    print(
        f"{args.distance} scale={args.scale}: train {seconds:.0f} s; 20-way 1-shot held out, "
        f"across {scores['across']}, within {scores['within']}"
    )


if __name__ == "__main__":
    main()
