"""Model-based meta-learning: a network that reads the support set and answers the queries
in one forward pass, its state doing the adaptation (chapter "Model-based meta-learning").

* :mod:`~metabook.learners.model_based.mann`: a memory-augmented network with
  least-recently-used access (Santoro et al., 2016);
* :mod:`~metabook.learners.model_based.in_context`: a Transformer that learns in context.

The same chapter's two extras live here too, where its readers look for them:
:mod:`~metabook.learners.model_based.task_attention` (attention across tasks) and
:mod:`~metabook.learners.model_based.architecture_search` (searching the backbone).
"""

from metabook.learners.model_based.architecture_search import (
    Architecture,
    SearchResult,
    SearchSpace,
    evolution_search,
    random_search,
)
from metabook.learners.model_based.in_context import InContextTransformer, in_context_mask
from metabook.learners.model_based.mann import MANN, LRUAMemory, MemoryState
from metabook.learners.model_based.task_attention import CrossTaskAttention, task_embedding

__all__ = [
    "Architecture",
    "SearchResult",
    "SearchSpace",
    "evolution_search",
    "random_search",
    "InContextTransformer",
    "in_context_mask",
    "LRUAMemory",
    "MANN",
    "MemoryState",
    "CrossTaskAttention",
    "task_embedding",
]
