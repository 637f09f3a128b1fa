"""Which training choices move ProtoNet's held-out 20-way 1-shot accuracy (issue 4's recipe).

Trains a ProtoNet (Conv4) on 80% of the characters of ``background_small1`` with rotations
(the part ``metabook train`` trains on) for a fixed number of steps under one variant,
then evaluates on the alphabets of ``background_small2`` that training never saw, within
one alphabet and across alphabets::

    python benchmarks/protonet_recipe_ablation.py --steps 1200                # plain
    python benchmarks/protonet_recipe_ablation.py --steps 1200 --augment      # distortions
    python benchmarks/protonet_recipe_ablation.py --steps 1200 --within       # within-alphabet
    python benchmarks/protonet_recipe_ablation.py --steps 600 --augment --train-ways 40
    python benchmarks/protonet_recipe_ablation.py --steps 1200 --augment --cosine

Results and the machine they ran on are in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import time

import torch

import metabook as mb
from metabook.data import EpisodeSampler, Omniglot, split_classes
from metabook.data.augment import AugmentedTasks, RandomAffine
from metabook.models import Conv4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--train-ways", type=int, default=20)
    parser.add_argument("--augment", action="store_true", help="random affine distortions")
    parser.add_argument("--within", action="store_true", help="within-alphabet training episodes")
    parser.add_argument("--cosine", action="store_true", help="cosine learning-rate decay")
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    mb.seed_everything(0)
    train_set = Omniglot("background_small1", rotations=True)
    test_set = Omniglot("background_small2")
    held_out = test_set.classes_outside(train_set.alphabets)
    groups = train_set.class_alphabet if args.within else None
    # the characters `metabook train` would train on (it keeps 20% for validation)
    train_classes, _ = split_classes(len(train_set.classes), [0.8, 0.2], seed=0)
    tasks = EpisodeSampler(
        train_set, args.train_ways, 1, 5, classes=train_classes, seed=0, groups=groups
    )
    if args.augment:
        tasks = AugmentedTasks(tasks, RandomAffine(generator=torch.Generator().manual_seed(0)))
    schedule = None
    if args.cosine:

        def schedule(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)

    learner = mb.ProtoNet(Conv4())
    start = time.perf_counter()
    mb.meta_train(
        learner, tasks, steps=args.steps, device=args.device, progress=False, scheduler=schedule
    )
    seconds = time.perf_counter() - start
    scores = {}
    for protocol, test_groups in (("within", test_set.class_alphabet), ("across", None)):
        sampler = EpisodeSampler(test_set, 20, 1, 5, classes=held_out, groups=test_groups)
        scores[protocol] = mb.evaluate(learner, sampler.episodes(args.episodes, seed=1))
    variant = " ".join(
        f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in ("device",)
    )
    print(
        f"{variant}: train {seconds:.0f} s; 20-way 1-shot held out, within one alphabet "
        f"{scores['within']}, across alphabets {scores['across']}"
    )


if __name__ == "__main__":
    main()
