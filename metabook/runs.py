"""A training run from its configuration: the data, the episodes, the learner and the
checkpoints that a :class:`~metabook.config.RunConfig` describes (what ``metabook train``
does, callable from Python)::

    config = metabook.RunConfig("protonet", ways=20, queries=5,
                                data=metabook.DataConfig("omniglot:background_small1"))
    history = metabook.runs.train_run(config, "runs/protonet")
    learner = metabook.load_learner("runs/protonet/best.pt")
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from metabook.config import RunConfig
from metabook.data.augment import AugmentedTasks, RandomAffine
from metabook.data.episodes import Episode, EpisodeSampler, TaskSource, split_classes
from metabook.data.omniglot import Omniglot
from metabook.registry import LEARNERS, build_learner, hyper_parameters, resolve
from metabook.runtime import seed_everything
from metabook.training import TrainHistory, check_folder, meta_train

__all__ = [
    "load_dataset",
    "train_and_validation_classes",
    "train_run",
    "training_tasks",
    "validation_episodes",
]

DATASET_FORMAT = "omniglot:SPLIT[+SPLIT...]"


def load_dataset(
    spec: str,
    data_root: str | os.PathLike[str] | None = None,
    image_size: int = 28,
    rotations: bool = False,
) -> Omniglot:
    """The dataset named ``omniglot:SPLIT[+SPLIT...]``, e.g.
    ``omniglot:background_small1+background_small2``. ``data_root`` is a folder like
    ``$METABOOK_DATA``: it holds ``omniglot/`` (by default ``$METABOOK_DATA`` and then the
    user cache are searched)."""
    name, _, split = spec.partition(":")
    if name != "omniglot" or not split:
        raise ValueError(
            f"unknown dataset {spec!r}: use {DATASET_FORMAT}, e.g. "
            "omniglot:background_small1+background_small2"
        )
    root = None if data_root is None else Path(data_root) / "omniglot"
    return Omniglot(split, root=root, image_size=image_size, rotations=rotations)


def train_and_validation_classes(
    config: RunConfig, data: Omniglot
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training and validation classes: the named validation alphabets (their
    unrotated characters), or a seeded fraction of the characters; either way the rotated
    copies of a validation character never reach training."""
    base = torch.tensor([name.count("/") == 1 for name in data.classes])  # not a rotation
    position = {name: i for i, name in enumerate(data.classes)}
    character = torch.tensor([position["/".join(name.split("/")[:2])] for name in data.classes])
    names = config.data.val_alphabets
    if names:
        unknown = sorted(set(names) - set(data.alphabets))
        if unknown:
            raise ValueError(
                f"validation alphabets {unknown} are not in {config.data.dataset}, whose "
                f"alphabets are {data.alphabets}"
            )
        if len(set(names)) == len(data.alphabets):
            raise ValueError("every alphabet is held out for validation: none is left to train on")
        held = torch.tensor([data.alphabets.index(name) for name in names])
        val_character = torch.isin(data.class_alphabet, held)
    else:
        fraction = config.data.val_fraction
        characters = torch.nonzero(base).squeeze(1)
        _, val = split_classes(len(characters), [1 - fraction, fraction], seed=config.train.seed)
        val_character = torch.zeros(len(data.classes), dtype=torch.bool)
        val_character[characters[val]] = True
    val_class = val_character[character]
    train = torch.nonzero(~val_class).squeeze(1)
    val = torch.nonzero(val_class & base).squeeze(1)
    return train, val


def training_tasks(config: RunConfig, data: Omniglot, classes: torch.Tensor) -> TaskSource:
    """The episodes the learner trains on: ``config.episode_ways``-way episodes of
    ``classes`` (within one alphabet if asked), distorted if asked."""
    seed = config.train.seed
    groups = data.class_alphabet if config.data.within_alphabet else None
    tasks: TaskSource = EpisodeSampler(
        data, config.episode_ways, config.shots, config.queries, classes, seed, groups
    )
    if config.data.augment:
        tasks = AugmentedTasks(tasks, RandomAffine(generator=torch.Generator().manual_seed(seed)))
    return tasks


def validation_episodes(
    config: RunConfig, data: Omniglot, classes: torch.Tensor
) -> tuple[list[Episode] | None, str | None]:
    """The fixed validation episodes of ``classes`` (the data as it is, ``ways``-way), and
    a note when they cannot follow the training protocol or are skipped."""
    count = config.train.val_episodes
    if not count:
        return None, "no validation (0 validation episodes): best.pt will not be written"
    if classes.numel() < config.ways and not config.data.val_alphabets:
        raise ValueError(
            f"the validation part has {classes.numel()} classes, fewer than the {config.ways} "
            "ways of an episode: lower the ways, raise the validation fraction, or train "
            "without validation (0 validation episodes)"
        )
    groups, note = None, None
    if config.data.val_alphabets or config.data.within_alphabet:
        largest = int(torch.bincount(data.class_alphabet[classes]).max())
        if largest >= config.ways:
            groups = data.class_alphabet
        elif config.data.val_alphabets:  # held-out alphabets mirror the official runs
            raise ValueError(
                f"no validation alphabet has {config.ways} characters (the largest has "
                f"{largest}): hold out a larger alphabet for {config.ways}-way episodes"
            )
        else:
            note = (
                f"validation episodes are drawn across alphabets: no alphabet has "
                f"{config.ways} validation characters (the largest has {largest})"
            )
    sampler = EpisodeSampler(
        data, config.ways, config.shots, config.queries, classes, groups=groups
    )
    return sampler.episodes(count, seed=config.train.seed), note


def train_run(
    config: RunConfig,
    out: str | os.PathLike[str],
    data_root: str | os.PathLike[str] | None = None,
    device: torch.device | str = "auto",
    progress: bool | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> TrainHistory:
    """Train the learner ``config`` describes and write ``last.pt`` and ``best.pt`` into
    ``out``. Everything that can be checked before training is checked before anything is
    written (the output folder, the data, the validation split, the method's constraints),
    and a run that fails before its first checkpoint removes the folder it created; notes
    about the run (a validation that cannot follow the protocol) are printed. ``resume``
    continues the run in ``out``; ``overwrite`` replaces one."""
    config = resolve(config)
    folder = Path(out)
    check_folder(folder, resume, overwrite)
    seed_everything(config.train.seed)
    data = load_dataset(
        config.data.dataset, data_root, config.data.image_size, config.data.rotations
    )
    if "num_classes" in hyper_parameters(LEARNERS[config.method].learner):
        # a classifier over the dataset's classes (a transfer baseline) is sized from it
        config = config.replace(hyper={"num_classes": len(data.classes), **config.hyper})
    train_classes, val_classes = train_and_validation_classes(config, data)
    tasks = training_tasks(config, data, train_classes)
    val, note = validation_episodes(config, data, val_classes)
    learner = build_learner(config)
    if note:
        print(note)
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        return meta_train(
            learner,
            tasks,
            steps=config.train.steps,
            meta_batch=config.train.meta_batch,
            lr=config.train.lr,
            val_episodes=val,
            val_every=config.train.val_every,
            checkpoint_dir=folder,
            config=config,
            device=device,
            progress=progress,
            grad_clip=config.train.grad_clip,
            resume=resume,
            overwrite=overwrite,
        )
    except BaseException:
        for path in created:  # a run that fails before its first checkpoint leaves nothing
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        raise
