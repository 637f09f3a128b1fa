"""A Transformer that learns in context (chapter "Model-based meta-learning").

The support pairs and the unlabelled queries of an episode are one sequence of tokens:
``token = proj(z) + label_embedding(y)`` for a support example and
``proj(z) + label_embedding(UNKNOWN)`` for a query, where ``z`` is ``encoder(x)``
standardised by the statistics of the episode's support set
(:func:`~metabook.learners.base.standardise_by_support`). A Transformer encoder with no
positional encoding (the support set is a set) mixes them, and a linear head reads the
query tokens: the prediction for a new task comes from one forward pass, with no gradient
step at test time, as in the in-context learning of large language models (Brown et al.,
2020).

The attention mask makes the queries independent: support tokens attend to the support
set only, and a query attends to the support set and to itself, never to another query.
So a query's prediction does not depend on which other queries share its episode (as long
as the encoder treats examples independently: use an encoder without batch statistics,
such as ``Conv4(norm="layer")``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from metabook.data.episodes import is_batched
from metabook.learners.base import (
    FewShotLearner,
    embedding_size,
    episode_ways,
    standardise_by_support,
)

__all__ = ["InContextTransformer", "in_context_mask"]


def in_context_mask(support: int, queries: int, device: torch.device | None = None) -> torch.Tensor:
    """The boolean attention mask ``[S+M, S+M]`` (``True`` = may *not* attend): every
    token sees the ``support`` tokens; a query token also sees itself and nothing else."""
    n = support + queries
    blocked = torch.ones(n, n, dtype=torch.bool, device=device)
    blocked[:, :support] = False
    index = torch.arange(support, n, device=device)
    blocked[index, index] = False
    return blocked


class InContextTransformer(FewShotLearner):
    """Few-shot classification by a Transformer reading the episode as a sequence.

    Args:
        encoder: embeds an example, ``[..., *shape] -> [..., embedding_dim]``.
        embedding_dim: the encoder's output size.
        max_ways: the largest number of classes of an episode (label embeddings and outputs).
        d_model, heads, layers, dropout: the Transformer encoder's size.
        standardise: centre and scale the embeddings by the support set's statistics
            before the projection. Without it, training stays at chance for thousands of
            episodes: an untrained Conv4's embeddings of different characters have cosine
            similarities around 0.95, so their differences are small beside the label
            embeddings and no query learns which support token to attend to.

    The attention mask keeps the queries apart (``queries_apart``), so inductive
    evaluation predicts them together unless the encoder normalises with batch statistics.
    """

    queries_apart = True

    def __init__(
        self,
        encoder: nn.Module,
        embedding_dim: int,
        max_ways: int = 5,
        d_model: int = 128,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.0,
        standardise: bool = True,
    ) -> None:
        super().__init__()
        self.encoder, self.max_ways, self.standardise = encoder, max_ways, standardise
        self.proj = nn.Linear(embedding_dim, d_model)
        self.labels = nn.Embedding(max_ways + 1, d_model)  # index max_ways = unknown
        layer = nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=2 * d_model, dropout=dropout, batch_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, max_ways)

    @classmethod
    def from_backbone(cls, backbone: nn.Module, ways: int, **hyper: Any) -> InContextTransformer:
        """A Transformer for episodes of up to ``ways`` classes, ``backbone`` its encoder."""
        return cls(backbone, embedding_size(backbone), max_ways=ways, **hyper)

    def _tokens(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens ``[B, S+M, d_model]`` of a batch of episodes, and the attention mask."""
        s, m = support_y.shape[1], query_x.shape[1]
        z = self.encoder(torch.cat([support_x, query_x], dim=1))
        if self.standardise:
            z = standardise_by_support(z, s)
        z = self.proj(z)
        unknown = support_y.new_full((support_y.shape[0], m), self.max_ways)
        tokens = z + self.labels(torch.cat([support_y, unknown], dim=1))
        return tokens, in_context_mask(s, m, tokens.device)

    def attention_maps(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> list[torch.Tensor]:
        """For one episode, each layer's attention weights ``[S+M, S+M]`` (averaged over
        heads; row ``i`` is what token ``i`` attends to, support tokens first)."""
        with torch.no_grad():
            x, mask = self._tokens(support_x[None], support_y[None], query_x[None])
            maps = []
            for layer in self.transformer.layers:
                inp = layer.norm1(x) if layer.norm_first else x
                _, weights = layer.self_attn(inp, inp, inp, attn_mask=mask, need_weights=True)
                maps.append(weights[0])
                x = layer(x, src_mask=mask)
        return maps

    def forward(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        ways: int | None = None,
    ) -> torch.Tensor:
        ways = episode_ways(support_y, ways, self.max_ways, self)
        batched = is_batched(support_x, support_y)
        if not batched:
            support_x, support_y, query_x = support_x[None], support_y[None], query_x[None]
        tokens, mask = self._tokens(support_x, support_y, query_x)
        out = self.transformer(tokens, mask=mask)
        logits = self.head(out[:, support_y.shape[1] :])[..., :ways]
        return logits if batched else logits[0]
