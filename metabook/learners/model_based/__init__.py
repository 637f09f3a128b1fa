"""Model-based meta-learning: a network that reads the support set and answers the queries
in one forward pass, its state doing the adaptation (chapter "Model-based meta-learning").

* :mod:`~metabook.learners.model_based.mann`: a memory-augmented network with
  least-recently-used access (Santoro et al., 2016);
* :mod:`~metabook.learners.model_based.in_context`: a Transformer that learns in context.

The same chapter's two extras live here too, where its readers look for them:
:mod:`~metabook.learners.model_based.task_attention` (attention across tasks) and
:mod:`~metabook.learners.model_based.architecture_search` (searching the backbone).
"""

from metabook.learners.model_based import architecture_search, in_context, mann, task_attention
from metabook.learners.model_based.architecture_search import *  # noqa: F403
from metabook.learners.model_based.in_context import *  # noqa: F403
from metabook.learners.model_based.mann import *  # noqa: F403
from metabook.learners.model_based.task_attention import *  # noqa: F403

__all__ = [
    *mann.__all__,
    *in_context.__all__,
    *task_attention.__all__,
    *architecture_search.__all__,
]
