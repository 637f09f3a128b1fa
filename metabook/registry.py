"""The registry of few-shot learners: one table from a method's name to its class, its
family, its default hyper-parameters and its backbone.

The command line's ``--method`` choices, :func:`build_learner`, :func:`load_learner`, the
tests and the API page of the book all read :data:`LEARNERS`. To add a method: write its
learner (a :class:`~metabook.learners.base.FewShotLearner`) in one new file of
``metabook/learners/`` and add one :class:`Method` line to the table below (the README's
"Adding a method" section walks through it).

Learners that do not take episodes of labelled examples are not here: MAML for policies
(:class:`~metabook.rl.policy_gradient.PolicyMAML`) learns from an environment's returns,
has no backbone to build from a :class:`~metabook.config.RunConfig` and no command-line
training; its chapter builds it in code.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from torch import nn

from metabook.checkpoints import Checkpoint, load_weights
from metabook.config import BackboneConfig, RunConfig
from metabook.learners.base import FewShotLearner
from metabook.learners.metric import MatchingNetwork, ProtoNet, SiameseNetwork
from metabook.learners.model_based.in_context import InContextTransformer
from metabook.learners.model_based.mann import MANN
from metabook.learners.optimisation.maml import MAML, MetaSGD
from metabook.learners.optimisation.meta_lstm import MetaLSTM
from metabook.learners.optimisation.reptile import Reptile
from metabook.learners.transfer import TransferBaseline
from metabook.models import Conv4

__all__ = [
    "LEARNERS",
    "Method",
    "build_backbone",
    "build_learner",
    "hyper_parameters",
    "load_learner",
    "load_run",
    "resolve",
]

FAMILIES = ("metric", "optimisation", "model-based", "transfer")


@dataclass(frozen=True)
class Method:
    """One entry of the registry.

    Attributes:
        name: what ``--method`` and :class:`~metabook.config.RunConfig` call it.
        learner: the learner class.
        family: ``"metric"``, ``"optimisation"`` or ``"model-based"`` (the book's parts), or
            ``"transfer"`` for the baselines that are not meta-learned.
        summary: one line for the command line's help and the API page, with its source.
        hyper: default hyper-parameters, passed to the learner's constructor.
        backbone: the default backbone (a :class:`~metabook.config.BackboneConfig`).
    """

    name: str
    learner: type[FewShotLearner]
    family: str
    summary: str
    hyper: Mapping[str, Any] = field(default_factory=dict)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
        object.__setattr__(self, "hyper", MappingProxyType(dict(self.hyper)))


_MAML = {"inner_lr": 0.4, "inner_steps": 1, "test_steps": 3}

#: Every method that the command line trains and :func:`load_learner` rebuilds, by name.
LEARNERS: Mapping[str, Method] = MappingProxyType(
    {
        m.name: m
        for m in (
            Method("protonet", ProtoNet, "metric", "Prototypical Networks (Snell et al., 2017)"),
            Method(
                "matching", MatchingNetwork, "metric", "Matching Networks (Vinyals et al., 2016)"
            ),
            Method(
                "siamese",
                SiameseNetwork,
                "metric",
                "Siamese network, contrastive loss (Hadsell et al., 2006)",
            ),
            Method("maml", MAML, "optimisation", "MAML, second order (Finn et al., 2017)", _MAML),
            Method(
                "fomaml",
                MAML,
                "optimisation",
                "first-order MAML (Finn et al., 2017)",
                {**_MAML, "first_order": True},
            ),
            Method(
                "metasgd",
                MetaSGD,
                "optimisation",
                "Meta-SGD: learned step sizes (Li et al., 2017)",
                _MAML,
            ),
            Method(
                "reptile",
                Reptile,
                "optimisation",
                "Reptile (Nichol et al., 2018)",
                {"inner_lr": 0.1, "inner_steps": 5, "test_steps": 10},
            ),
            Method(
                "metalstm",
                MetaLSTM,
                "optimisation",
                "Meta-LSTM learned optimiser (Ravi and Larochelle, 2017)",
                {"inner_steps": 5},
                BackboneConfig(channels=32),
            ),
            Method(
                "mann",
                MANN,
                "model-based",
                "memory-augmented network (Santoro et al., 2016)",
                {"controller_size": 128, "slots": 32, "width": 40},
                BackboneConfig(norm="layer"),
            ),
            Method(
                "transformer",
                InContextTransformer,
                "model-based",
                "Transformer that learns in context (chapter 'Model-based meta-learning')",
                {},
                BackboneConfig(norm="layer"),
            ),
            Method(
                "transfer",
                TransferBaseline,
                "transfer",
                "classifier on every training class, nearest centroid (Wang et al., 2019)",
                {"head": "centroid"},
            ),
            Method(
                "transfer-probe",
                TransferBaseline,
                "transfer",
                "classifier on every training class, linear probe (Chen et al., 2019)",
                {"head": "probe"},
            ),
            Method(
                "transfer-finetune",
                TransferBaseline,
                "transfer",
                "classifier on every training class, fine-tuned on the support set "
                "(Chen et al., 2019)",
                {"head": "finetune"},
            ),
        )
    }
)


def _method(name: str) -> Method:
    if name not in LEARNERS:
        raise ValueError(f"unknown method {name!r}: choose from {', '.join(LEARNERS)}")
    return LEARNERS[name]


def hyper_parameters(learner: type[FewShotLearner]) -> list[str]:
    """The names a learner's constructor accepts after its backbone (following ``**kwargs``
    to the parent class, as :class:`~metabook.learners.optimisation.maml.MetaSGD` passes
    them on to MAML)."""
    names: list[str] = []
    for cls in learner.__mro__:
        if "__init__" not in vars(cls):
            continue
        parameters = list(inspect.signature(vars(cls)["__init__"]).parameters.values())[2:]
        names += [p.name for p in parameters if p.kind is not p.VAR_KEYWORD]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return sorted(set(names))


def _check_hyper(method: Method, hyper: Mapping[str, Any]) -> None:
    """Every hyper-parameter must be an argument of the learner's constructor."""
    accepted = hyper_parameters(method.learner)
    unknown = sorted(set(hyper) - set(accepted))
    if unknown:
        raise ValueError(
            f"{method.name} has no hyper-parameter {', '.join(unknown)}: choose from "
            f"{', '.join(accepted)}"
        )


def resolve(config: RunConfig) -> RunConfig:
    """``config`` with the method's defaults filled in: every hyper-parameter and the
    backbone are then written out, so that a checkpoint rebuilds the same learner even if a
    later version changes a default."""
    method = _method(config.method)
    hyper = {**method.hyper, **config.hyper}
    _check_hyper(method, hyper)
    if method.learner.needs_head and config.train_ways not in (None, config.ways):
        raise ValueError(
            f"{method.name} has a fixed {config.ways}-way head: train it with ways equal to "
            "the test ways (drop train_ways)"
        )
    return config.replace(hyper=hyper, backbone=config.backbone or method.backbone)


def build_backbone(config: RunConfig) -> nn.Module:
    """The backbone of ``config``: a :class:`~metabook.models.Conv4` for its inputs, with a
    ``ways``-way head when the method needs one."""
    backbone = config.backbone or _method(config.method).backbone
    if backbone.name != "conv4":
        raise ValueError(f"unknown backbone {backbone.name!r}: metabook builds 'conv4'")
    needs_head = _method(config.method).learner.needs_head
    return Conv4(
        out_features=config.ways if needs_head else None,
        in_channels=config.data.in_channels,
        channels=backbone.channels,
        image_size=config.data.image_size,
        norm=backbone.norm,
    )


def build_learner(config: RunConfig) -> FewShotLearner:
    """The learner that ``config`` describes, with freshly initialised weights."""
    config = resolve(config)
    method = _method(config.method)
    return method.learner.from_backbone(build_backbone(config), config.ways, **config.hyper)


def load_run(path: str | os.PathLike[str]) -> tuple[FewShotLearner, RunConfig]:
    """The learner saved in a checkpoint written by :func:`~metabook.training.meta_train`
    with a :class:`~metabook.config.RunConfig` (rebuilt with its trained weights, on the
    CPU), and that configuration."""
    checkpoint = Checkpoint.read(path)
    if checkpoint.config is None:
        raise ValueError(
            f"{path} holds no run configuration ({checkpoint.learner or 'a learner'} trained "
            "without one): build the learner in code and call load_checkpoint(path, learner)"
        )
    learner = build_learner(checkpoint.config)
    load_weights(learner, checkpoint, path)
    return learner, checkpoint.config


def load_learner(path: str | os.PathLike[str]) -> FewShotLearner:
    """The learner saved in a checkpoint, rebuilt from its run configuration with its
    trained weights (see :func:`load_run`)."""
    return load_run(path)[0]
