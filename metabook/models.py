"""Backbones used across the book (defined in the chapter "Core concepts").

BatchNorm policy: :class:`Conv4` normalises with the statistics of the batch it is given
and keeps **no running statistics** (``track_running_stats=False``). A meta-learner sees
one small task at a time; running averages would mix tasks and, inside MAML's inner loop,
would be mutated by every adapted copy of the model (a bug of learn2learn's clones, which
share the buffers). Without buffers the module is a pure function of its parameters and
input, so ``torch.func.functional_call`` and ``vmap`` over tasks work unchanged, and the
behaviour is the same in ``train()`` and ``eval()`` mode: every episode is normalised with
its own statistics, as in the MAML paper.
"""

from __future__ import annotations

import torch
from torch import nn

from metabook._compat import renamed_arguments

__all__ = ["BagOfWords", "Conv4", "MLP", "NORMS", "conv_block"]


NORMS = ("batch", "layer", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels, track_running_stats=False)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}: choose from {NORMS}")


def conv_block(
    in_channels: int, out_channels: int, pool: bool = True, norm: str = "batch"
) -> nn.Sequential:
    """3x3 convolution, normalisation, ReLU, and 2x2 max-pooling.

    ``norm="batch"``: BatchNorm with the statistics of the batch only (the default);
    ``"layer"``: per-example normalisation over channels and pixels (``GroupNorm(1, C)``),
    so each example is embedded independently of the others; ``"none"``.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        _norm(norm, out_channels),
        nn.ReLU(),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Conv4(nn.Module):
    """The four-block convolutional network of the few-shot literature.

    Four blocks of [3x3 conv with ``channels`` channels, BatchNorm, ReLU, 2x2 max-pool], as in
    Vinyals et al. (2016), Finn et al. (2017) and Snell et al. (2017). A 28x28 Omniglot
    image becomes a 64-dimensional embedding (28 -> 14 -> 7 -> 3 -> 1).

    Args:
        out_features: add a linear head with this many outputs (for MAML); ``None``
            returns the flattened embedding (for metric-based learners).
        in_channels: 1 for Omniglot, 3 for colour images.
        channels: channels of every block.
        image_size: the side of the input images, which fixes the embedding size
            (``channels * (image_size // 16) ** 2``: 64 for 28x28, 1600 for 84x84).
        norm: ``"batch"`` (BatchNorm with batch statistics), ``"layer"`` (per example, for
            learners whose predictions must not depend on the other examples of a batch)
            or ``"none"``.

    Inputs may carry any number of leading dimensions (``[..., C, H, W]``): a batch of
    episodes ``[B, M, C, H, W]`` is embedded to ``[B, M, D]``. BatchNorm then uses the
    statistics of all ``B * M`` images; call it per task (or ``vmap`` it) to normalise
    each task with its own statistics.
    """

    @renamed_arguments(hidden="channels")
    def __init__(
        self,
        out_features: int | None = None,
        in_channels: int = 1,
        channels: int = 64,
        image_size: int = 28,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if out_features is not None and out_features < 1:
            raise ValueError(f"out_features must be positive or None, got {out_features}")
        side = image_size
        for _ in range(4):
            side //= 2
        if side < 1:
            raise ValueError(f"image_size must be at least 16 for four poolings, got {image_size}")
        self.in_channels, self.image_size = in_channels, image_size
        self.embedding_dim = channels * side * side
        self.features = nn.Sequential(
            conv_block(in_channels, channels, norm=norm),
            conv_block(channels, channels, norm=norm),
            conv_block(channels, channels, norm=norm),
            conv_block(channels, channels, norm=norm),
        )
        self.head = nn.Linear(self.embedding_dim, out_features) if out_features else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() < 4 or tuple(x.shape[-3:]) != expected:
            raise ValueError(
                f"Conv4 expects images [..., {', '.join(map(str, expected))}], got "
                f"{tuple(x.shape)}; build it with in_channels= and image_size= that match"
            )
        lead = x.shape[:-3]
        z = self.features(x.reshape(-1, *x.shape[-3:])).flatten(1)
        if self.head is not None:
            z = self.head(z)
        return z.reshape(*lead, z.shape[-1])


class MLP(nn.Module):
    """A fully connected ReLU network, by default 1 -> 40 -> 40 -> 1 as for MAML's sine tasks
    (``hidden_sizes`` are the widths of the hidden layers)."""

    @renamed_arguments(hidden="hidden_sizes")
    def __init__(
        self,
        in_features: int = 1,
        out_features: int = 1,
        hidden_sizes: tuple[int, ...] = (40, 40),
    ) -> None:
        super().__init__()
        sizes = (in_features, *hidden_sizes)
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BagOfWords(nn.Module):
    """A text encoder for token ids (chapter "Applications"): the mean of learned word
    vectors over the words present (id 0 pads and is ignored), then a ReLU layer.

    ``[..., length]`` token ids give ``[..., out_features]``; an utterance with no words
    gives the ReLU layer's output for a zero vector.
    """

    def __init__(self, vocabulary_size: int, dim: int = 128, out_features: int = 128) -> None:
        super().__init__()
        if vocabulary_size < 2:
            raise ValueError(f"vocabulary_size must be at least 2, got {vocabulary_size}")
        self.words = nn.Embedding(vocabulary_size, dim, padding_idx=0)
        self.out = nn.Linear(dim, out_features)
        self.embedding_dim = out_features

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dtype != torch.int64 or tokens.dim() < 1:
            raise ValueError(
                f"BagOfWords expects int64 token ids [..., length], got {tokens.dtype}"
            )
        if int(tokens.max()) >= self.words.num_embeddings or int(tokens.min()) < 0:
            raise ValueError(
                f"token ids must be in 0..{self.words.num_embeddings - 1}; build the encoder "
                "with the size of the vocabulary that encoded them"
            )
        present = (tokens != 0).unsqueeze(-1).to(self.words.weight.dtype)
        total = (self.words(tokens) * present).sum(-2)
        mean = total / present.sum(-2).clamp_min(1)
        return torch.relu(self.out(mean))
