"""Architecture search for few-shot learning (chapter "Model-based meta-learning").

One of the book's source articles sketches neural architecture search in three steps:
define a search space, search it with reinforcement learning or an evolutionary algorithm,
train the architecture found.
Here the space holds small convolutional embeddings (depth, width, pooling), the strategy is
regularised evolution (Real et al., 2019: mutate a tournament's winner, retire the oldest
member), and random search at the same budget is the baseline every search method must
beat. The score of an architecture is whatever the caller measures, for instance the
validation accuracy of a ProtoNet trained briefly with it.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from metabook.models import NORMS, conv_block

__all__ = [
    "Architecture",
    "SearchResult",
    "SearchSpace",
    "evolution_search",
    "random_search",
]


@dataclass(frozen=True)
class Architecture:
    """A convolutional embedding: ``depth`` blocks of [3x3 conv with ``width`` channels,
    normalisation, ReLU, 2x2 ``pooling`` ("max" or "avg")], flattened."""

    depth: int
    width: int
    pooling: str = "max"

    def build(self, in_channels: int = 1, norm: str = "batch") -> nn.Module:
        """The embedding network (inputs ``[..., C, H, W]``, any number of leading dims)."""
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}: choose from {NORMS}")
        blocks: list[nn.Module] = []
        channels = in_channels
        for _ in range(self.depth):
            block = conv_block(channels, self.width, pool=False, norm=norm)
            pool = nn.MaxPool2d(2) if self.pooling == "max" else nn.AvgPool2d(2)
            blocks += [*block, pool]
            channels = self.width
        return _Embedding(nn.Sequential(*blocks))

    def __str__(self) -> str:
        return f"depth {self.depth}, width {self.width}, {self.pooling}-pool"


class _Embedding(nn.Module):
    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-3]
        z = self.features(x.reshape(-1, *x.shape[-3:])).flatten(1)
        return z.reshape(*lead, z.shape[-1])


@dataclass(frozen=True)
class SearchSpace:
    """The choices for each field of :class:`Architecture`."""

    depths: tuple[int, ...] = (2, 3, 4)
    widths: tuple[int, ...] = (16, 32, 64)
    poolings: tuple[str, ...] = ("max", "avg")

    def __post_init__(self) -> None:
        if not self.depths or not self.widths or not self.poolings:
            raise ValueError("every dimension of the search space needs at least one choice")
        if any(p not in ("max", "avg") for p in self.poolings):
            raise ValueError(f"poolings must be 'max' or 'avg', got {self.poolings}")

    def all(self) -> list[Architecture]:
        """Every architecture of the space."""
        return [
            Architecture(d, w, p)
            for d, w, p in itertools.product(self.depths, self.widths, self.poolings)
        ]

    def sample(self, rng: random.Random) -> Architecture:
        return Architecture(
            rng.choice(self.depths), rng.choice(self.widths), rng.choice(self.poolings)
        )

    def mutate(self, parent: Architecture, rng: random.Random) -> Architecture:
        """Change one field of ``parent`` to another of its choices (a neighbour)."""
        options: dict[str, list[Any]] = {
            "depth": [d for d in self.depths if d != parent.depth],
            "width": [w for w in self.widths if w != parent.width],
            "pooling": [p for p in self.poolings if p != parent.pooling],
        }
        fields_ = [name for name, choices in options.items() if choices]
        if not fields_:
            return parent
        name = rng.choice(fields_)
        return replace(parent, **{name: rng.choice(options[name])})


@dataclass
class SearchResult:
    """Every architecture evaluated, in order, with its score (higher is better)."""

    history: list[tuple[Architecture, float]] = field(default_factory=list)

    @property
    def best(self) -> tuple[Architecture, float]:
        """The best architecture evaluated and its score."""
        if not self.history:
            raise ValueError("nothing was evaluated")
        return max(self.history, key=lambda item: item[1])

    def best_so_far(self) -> list[float]:
        """The best score after each evaluation (for plots of search progress)."""
        return list(itertools.accumulate((s for _, s in self.history), max))


Score = Callable[[Architecture], float]


def _check_budget(space: SearchSpace, budget: int) -> None:
    size = len(space.all())
    if not 1 <= budget <= size:
        raise ValueError(
            f"budget must be between 1 and the size of the space ({size}), got {budget}"
        )


def random_search(score: Score, space: SearchSpace, budget: int, seed: int = 0) -> SearchResult:
    """Evaluate ``budget`` distinct architectures drawn uniformly from ``space``."""
    _check_budget(space, budget)
    rng = random.Random(seed)
    result = SearchResult()
    for arch in rng.sample(space.all(), budget):
        result.history.append((arch, float(score(arch))))
    return result


def evolution_search(
    score: Score,
    space: SearchSpace,
    budget: int,
    population: int = 4,
    tournament: int = 2,
    seed: int = 0,
) -> SearchResult:
    """Regularised evolution (Real et al., 2019) with ``budget`` distinct evaluations.

    Start with ``population`` random architectures; then repeatedly pick ``tournament`` of
    the population at random, mutate the best of them, evaluate the child, add it and retire
    the *oldest* member. An architecture already evaluated is never evaluated again (a
    mutation that lands on one is redrawn, or replaced by an unseen random architecture).
    """
    _check_budget(space, budget)
    if population < 1 or not 1 <= tournament <= population:
        raise ValueError(
            f"need population >= 1 and 1 <= tournament <= population; got {population}, "
            f"{tournament}"
        )
    rng = random.Random(seed)
    result = SearchResult()
    seen: set[Architecture] = set()

    def measure(arch: Architecture) -> tuple[Architecture, float]:
        seen.add(arch)
        item = (arch, float(score(arch)))
        result.history.append(item)
        return item

    unseen = space.all()
    rng.shuffle(unseen)
    alive: deque[tuple[Architecture, float]] = deque(
        measure(arch) for arch in unseen[: min(population, budget)]
    )
    while len(result.history) < budget:
        contenders = rng.sample(list(alive), tournament)
        parent = max(contenders, key=lambda item: item[1])[0]
        child = parent
        for _ in range(20):
            child = space.mutate(parent, rng)
            if child not in seen:
                break
        if child in seen:
            child = rng.choice([a for a in space.all() if a not in seen])
        alive.append(measure(child))
        if len(alive) > population:
            alive.popleft()
    return result
