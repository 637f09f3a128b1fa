"""Ratings for cold-start recommendation as few-shot regression (chapter "Applications").

A user is a task: from the few items a new user has rated (the support set) predict the
ratings of others (the queries), in the manner of MeLU (Lee et al., 2019). An example's
input is the item's features followed by the user's, its target the rating.

Two sources:

* :func:`load_movielens_100k` reads MovieLens 100k (943 users, 1,682 films, 100,000
  ratings) from a copy the reader downloads from GroupLens: its licence does not allow
  redistribution, so metabook never fetches it.
* :func:`simulate_ratings` makes a rating matrix from a stated generative model, for when
  no copy is at hand (as under CI). Its results are about that model, not about people;
  the ``simulated`` field of :class:`RatingData` says which is which.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from metabook._compat import renamed_arguments, warn_deprecated
from metabook.data.episodes import Episode, TaskSource, _batch_count
from metabook.files import DataNotFoundError, candidate_roots

__all__ = [
    "RatingData",
    "UserTasks",
    "cold_start_episodes",
    "load_movielens_100k",
    "simulate_ratings",
]

MOVIELENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"


@dataclass
class RatingData:
    """Ratings as parallel tensors ``users``, ``items``, ``ratings`` (float, 1..5) and
    ``times`` (for ordering a user's ratings), with ``item_features [items, F]`` and
    ``user_features [users, G]``; ``simulated`` is true for :func:`simulate_ratings`."""

    users: torch.Tensor
    items: torch.Tensor
    ratings: torch.Tensor
    times: torch.Tensor
    item_features: torch.Tensor
    user_features: torch.Tensor
    simulated: bool
    description: str

    def __post_init__(self) -> None:
        n = self.users.numel()
        if not (self.items.numel() == self.ratings.numel() == self.times.numel() == n):
            raise ValueError("users, items, ratings and times must have the same length")

    @property
    def feature_dim(self) -> int:
        """The size of an example's input (item features, then user features)."""
        return self.item_features.shape[1] + self.user_features.shape[1]

    def inputs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The input ``[..., feature_dim]`` of each (user, item) pair."""
        return torch.cat([self.item_features[items], self.user_features[users]], dim=-1)

    def ratings_per_user(self) -> torch.Tensor:
        """How many ratings each user has, ``[users]``."""
        return torch.bincount(self.users, minlength=self.user_features.shape[0])

    def __repr__(self) -> str:
        kind = "SIMULATED" if self.simulated else "real"
        return (
            f"RatingData({kind}: {self.user_features.shape[0]} users, "
            f"{self.item_features.shape[0]} items, {self.ratings.numel()} ratings)"
        )


def simulate_ratings(
    users: int = 600,
    items: int = 400,
    genres: int = 12,
    groups: int = 4,
    ratings_per_user: tuple[int, int] = (20, 80),
    individuality: float = 1.0,
    noise: float = 0.5,
    seed: int = 0,
) -> RatingData:
    """A simulated rating matrix, from this model (all draws from one seeded generator):

    * each item has one to three of ``genres`` genres (its features, multi-hot) and a
      quality ``q_i ~ N(0, 0.5^2)``;
    * each user belongs to one of ``groups`` groups (the user's features, one-hot); the
      group has a taste ``t_g ~ N(0, I)`` over genres, and the user the taste
      ``t_u = t_g + individuality * N(0, I)``, which no feature reveals;
    * a user rates ``ratings_per_user`` items drawn at random, each
      ``round(3 + q_i + t_u . genres_i / sqrt(#genres_i) + noise * N(0, 1))`` clipped to 1..5.

    So the features explain part of a rating, and the rest must be learned from the user's
    own ratings: the cold-start problem in small.
    """
    low, high = ratings_per_user
    if not 1 <= low <= high <= items:
        raise ValueError(
            f"ratings_per_user must satisfy 1 <= low <= high <= items, got {low, high}"
        )
    if users < 1 or genres < 1 or groups < 1:
        raise ValueError("users, genres and groups must be positive")
    g = torch.Generator().manual_seed(seed)
    item_genres = torch.zeros(items, genres)
    counts = torch.randint(1, min(3, genres) + 1, (items,), generator=g)
    for i in range(items):
        item_genres[i, torch.randperm(genres, generator=g)[: counts[i]]] = 1.0
    quality = 0.5 * torch.randn(items, generator=g)
    group = torch.randint(groups, (users,), generator=g)
    taste = torch.randn(groups, genres, generator=g)[group]
    taste = taste + individuality * torch.randn(users, genres, generator=g)
    rows_u, rows_i = [], []
    for u in range(users):
        n = int(torch.randint(low, high + 1, (1,), generator=g))
        rows_u.append(torch.full((n,), u))
        rows_i.append(torch.randperm(items, generator=g)[:n])
    u_idx, i_idx = torch.cat(rows_u), torch.cat(rows_i)
    affinity = (taste[u_idx] * item_genres[i_idx]).sum(-1) / item_genres[i_idx].sum(-1).sqrt()
    raw = 3 + quality[i_idx] + affinity + noise * torch.randn(u_idx.numel(), generator=g)
    ratings = raw.round().clamp(1, 5)
    times = torch.randperm(u_idx.numel(), generator=g)
    return RatingData(
        u_idx,
        i_idx,
        ratings,
        times,
        item_genres,
        torch.nn.functional.one_hot(group, groups).float(),
        True,
        f"SIMULATED ratings (seed {seed}): {users} users in {groups} groups, {items} items "
        f"with {genres} genres; not data about people",
    )


def _find_movielens(root: str | os.PathLike[str] | None) -> Path:
    for folder in candidate_roots("movielens", root):
        for candidate in (folder, folder / "ml-100k"):
            if (candidate / "u.data").is_file():
                return candidate
    looked = "\n".join(f"  - {f}" for f in candidate_roots("movielens", root))
    raise DataNotFoundError(
        "MovieLens 100k was not found. Its licence does not allow redistribution, so "
        f"download it yourself from GroupLens ({MOVIELENS_URL}), accept its terms, unzip it, "
        f"and put the folder ml-100k in one of:\n{looked}\n(or pass root=...)"
    )


def load_movielens_100k(root: str | os.PathLike[str] | None = None) -> RatingData:
    """MovieLens 100k from the folder ``ml-100k`` (files ``u.data``, ``u.item``, ``u.user``).

    Item features: the 19 genre flags. User features: seven age bands, gender and the 21
    occupations, one-hot. Ratings keep their timestamps, so a new user's *first* ratings can
    form the support set.
    """
    folder = _find_movielens(root)
    try:
        data = torch.tensor(
            [
                [int(v) for v in line.split("\t")]
                for line in (folder / "u.data").read_text(encoding="latin-1").splitlines()
                if line.strip()
            ]
        )
        item_rows = [
            line.split("|")
            for line in (folder / "u.item").read_text(encoding="latin-1").splitlines()
            if line.strip()
        ]
        user_rows = [
            line.split("|")
            for line in (folder / "u.user").read_text(encoding="latin-1").splitlines()
            if line.strip()
        ]
        genres = torch.tensor([[float(v) for v in row[-19:]] for row in item_rows])
        occupations = sorted({row[3] for row in user_rows})
        bands = torch.tensor([min(int(row[1]) // 10, 6) for row in user_rows])
        user_features = torch.cat(
            [
                torch.nn.functional.one_hot(bands, 7).float(),
                torch.tensor([[float(row[2] == "M")] for row in user_rows]),
                torch.nn.functional.one_hot(
                    torch.tensor([occupations.index(row[3]) for row in user_rows]), len(occupations)
                ).float(),
            ],
            dim=1,
        )
    except (OSError, ValueError, IndexError, RuntimeError) as err:
        raise ValueError(
            f"{folder} does not look like MovieLens 100k (u.data, u.item, u.user): {err}"
        ) from err
    if genres.shape[0] < int(data[:, 1].max()) or user_features.shape[0] < int(data[:, 0].max()):
        raise ValueError(f"{folder}: u.data names users or items missing from u.user / u.item")
    return RatingData(
        data[:, 0] - 1,
        data[:, 1] - 1,
        data[:, 2].float(),
        data[:, 3],
        genres,
        user_features,
        False,
        f"MovieLens 100k from {folder}",
    )


def _user_rows(data: RatingData, user: int) -> torch.Tensor:
    rows = torch.nonzero(data.users == user).squeeze(1)
    return rows[torch.argsort(data.times[rows], stable=True)]


class UserTasks(TaskSource):
    """Few-shot regression tasks, one user each: ``shots`` ratings and ``queries`` others.

    Args:
        data: the ratings.
        users: the users tasks may come from (e.g. the training users), by default all.
        shots, queries: ratings per task in the support and query sets.
        seed: seeds the sampler's own generator.

    Users with fewer than ``shots + queries`` ratings are left out; a :class:`ValueError`
    says so when none is left. ``sample(batch)`` returns an
    :class:`~metabook.data.episodes.Episode` with inputs
    ``[B, K, feature_dim]`` and targets ``[B, K, 1]`` (``regression=True``); ``info["users"]``
    holds each task's user and ``info["rows"] [B, K+Q]`` the ratings it was made of.
    """

    @renamed_arguments(support="shots")
    def __init__(
        self,
        data: RatingData,
        users: torch.Tensor | list[int] | None = None,
        shots: int = 10,
        queries: int = 10,
        seed: int = 0,
    ) -> None:
        if shots < 1 or queries < 1:
            raise ValueError(f"need shots >= 1 and queries >= 1, got {shots} and {queries}")
        pool = (
            torch.arange(data.user_features.shape[0]) if users is None else torch.as_tensor(users)
        )
        per_user = data.ratings_per_user()
        counts = per_user[pool]
        self.users = pool[counts >= shots + queries]
        if self.users.numel() == 0:
            raise ValueError(
                f"no user has the {shots + queries} ratings a task needs (most has "
                f"{int(counts.max()) if counts.numel() else 0}); lower shots or queries"
            )
        self.data, self.shots, self.queries = data, shots, queries
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        order = torch.argsort(data.users, stable=True)
        self._order = order
        self._counts = per_user
        self._starts = torch.cumsum(per_user, 0) - per_user

    @property
    def support(self) -> int:
        """Deprecated name of ``shots``."""
        warn_deprecated("UserTasks.support", "UserTasks.shots")
        return self.shots

    def sample(
        self, batch_size: int | None = None, generator: torch.Generator | None = None
    ) -> Episode:
        """A task (or a batch of ``batch_size`` tasks)."""
        generator = self.generator if generator is None else generator
        count = _batch_count(batch_size)
        picks = self.users[torch.randint(self.users.numel(), (count,), generator=generator)]
        need = self.shots + self.queries
        rows = []
        for user in picks.tolist():
            start, n = int(self._starts[user]), int(self._counts[user])
            chosen = torch.randperm(n, generator=generator)[:need]
            rows.append(self._order[start + chosen])
        index = torch.stack(rows)
        x = self.data.inputs(self.data.users[index], self.data.items[index])
        y = self.data.ratings[index].unsqueeze(-1)
        k = self.shots
        episode = Episode(
            x[:, :k],
            y[:, :k],
            x[:, k:],
            y[:, k:],
            regression=True,
            info={"users": picks, "rows": index},
        )
        return episode if batch_size is not None else episode.task(0)


@renamed_arguments(support="shots")
def cold_start_episodes(data: RatingData, users: list[int], shots: int) -> list[Episode]:
    """For each user, an episode whose support set is the user's *first* ``shots`` ratings
    (by time) and whose queries are all the later ones; users with no later rating are left
    out."""
    episodes = []
    for user in users:
        rows = _user_rows(data, user)
        if rows.numel() <= shots:
            continue
        x = data.inputs(data.users[rows], data.items[rows])
        y = data.ratings[rows].unsqueeze(-1)
        episodes.append(
            Episode(
                x[:shots],
                y[:shots],
                x[shots:],
                y[shots:],
                regression=True,
                info={"user": user},
            )
        )
    if not episodes:
        raise ValueError(f"none of the {len(users)} users has more than {shots} ratings")
    return episodes
