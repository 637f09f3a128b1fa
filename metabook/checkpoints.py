"""Checkpoint files: the weights of a learner with what made them (chapter "Core concepts").

A checkpoint written by :func:`~metabook.training.meta_train` holds the learner's
``state_dict``, the step, the training history and the :class:`~metabook.config.RunConfig`
of the run; only tensors and plain data, so reading it never runs code from the file
(``torch.load(weights_only=True)``). :func:`~metabook.registry.load_learner` rebuilds the
learner from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metabook._version import __version__
from metabook.config import BackboneConfig, DataConfig, RunConfig, TrainConfig
from metabook.files import atomic_write

__all__ = ["Checkpoint", "load_checkpoint"]

FORMAT = "metabook-checkpoint"


@dataclass
class Checkpoint:
    """What a checkpoint file holds.

    Attributes:
        state_dict: the learner's weights.
        step: the meta-training step they were saved at.
        history: the losses and validation results up to ``step``.
        config: the run configuration, or ``None`` for a learner trained without one.
        learner: the class name of the learner.
        version: the metabook version that wrote the file.
    """

    state_dict: dict[str, torch.Tensor]
    step: int
    history: dict[str, Any] = field(default_factory=dict)
    config: RunConfig | None = None
    learner: str = ""
    version: str = ""

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the checkpoint to ``path`` atomically (a reader never sees half a file)."""
        blob = {
            "format": FORMAT,
            "state_dict": self.state_dict,
            "step": self.step,
            "history": self.history,
            "config": None if self.config is None else self.config.to_dict(),
            "learner": self.learner,
            "version": self.version or __version__,
        }
        return atomic_write(Path(path), lambda tmp: torch.save(blob, tmp))

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """Read a checkpoint written by metabook (this version or 0.1)."""
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or "state_dict" not in blob:
            raise ValueError(f"{path} is not a metabook checkpoint")
        raw = blob.get("config")
        if blob.get("format") == FORMAT:
            config = None if raw is None else RunConfig.from_dict(raw)
        else:
            config = _legacy_config(raw)
        return cls(
            state_dict=blob["state_dict"],
            step=int(blob.get("step", 0)),
            history=blob.get("history") or {},
            config=config,
            learner=str(blob.get("learner", "")),
            version=str(blob.get("version", "0.1")),
        )


def _legacy_config(raw: Any) -> RunConfig | None:
    """The run configuration of a checkpoint written by ``metabook train`` 0.1 (a dict with
    ``method``, ``ways``, ``preprocessing`` and the command's ``args``)."""
    if not isinstance(raw, dict) or "method" not in raw:
        return None
    prep, args = raw.get("preprocessing", {}), raw.get("args", {})
    return RunConfig(
        method=raw["method"],
        ways=int(raw["ways"]),
        shots=int(args.get("shots", 1)),
        queries=int(args.get("queries", 5)),
        train_ways=args.get("train_ways"),
        backbone=BackboneConfig(),
        data=DataConfig(
            dataset=prep.get("dataset", DataConfig.dataset),
            image_size=int(prep.get("image_size", 28)),
            rotations=bool(prep.get("rotations", False)),
            augment=bool(prep.get("augment", False)),
            within_alphabet=bool(args.get("within_alphabet", False)),
            val_fraction=float(args.get("val_fraction", 0.2)),
        ),
        train=TrainConfig(
            steps=int(args.get("steps", 1000)),
            meta_batch=int(args.get("meta_batch", 1)),
            lr=float(args.get("lr", 1e-3)),
            val_episodes=int(args.get("val_episodes", 100)),
            val_every=int(args.get("val_every", 100)),
            seed=int(args.get("seed", 0)),
        ),
        command=str(raw.get("command", "")),
    )


def load_checkpoint(path: str | os.PathLike[str], learner: nn.Module | None = None) -> Checkpoint:
    """Read a checkpoint written by :func:`~metabook.training.meta_train` (safely: tensors
    and plain data only). With ``learner`` given, its weights are loaded from it."""
    checkpoint = Checkpoint.read(path)
    if learner is not None:
        learner.load_state_dict(checkpoint.state_dict)
    return checkpoint
