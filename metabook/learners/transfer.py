"""Transfer baselines: a classifier pretrained on every training class, then a simple head.

Defined in the chapter "Siamese networks and prototype losses". Chen et al. (2019) and
Tian et al. (2020) showed that a network trained as an ordinary classifier on all the
training classes, with a simple classifier fitted on its features at test time, often
matches meta-learners: the baseline a meta-learning result has to beat. Wang et al.
(2019)'s SimpleShot is the nearest-centroid version, on centred, L2-normalised features.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from metabook.data.episodes import Episode
from metabook.learners.base import FewShotLearner, embedding_size, episode_ways, per_task
from metabook.learners.metric import _embed, pairwise_distance, prototypes

__all__ = ["TransferBaseline", "centred_unit"]

HEADS = ("centroid", "probe")


def centred_unit(features: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """Features minus ``centre``, scaled to unit length (SimpleShot's "CL2N")."""
    return F.normalize(features - centre, dim=-1)


class TransferBaseline(FewShotLearner):
    """A backbone trained as a ``num_classes``-way classifier, solving episodes on its
    features.

    Training (:meth:`loss`) ignores the episode's structure: every support and query image
    is classified among all the dataset's classes (``episode.info["classes"]`` gives each
    episode label's dataset class), so any episode sampler feeds it. At test time the
    support and query images are embedded together (the backbone sees the same batch as a
    ProtoNet's does) and the features are centred on the support set's mean and scaled to
    unit length; then ``head="centroid"`` scores each query by minus its squared distance
    to each class mean (SimpleShot), and ``head="probe"`` fits a logistic-regression probe
    on the support features (``probe_steps`` of Adam at ``probe_lr``, weight decay
    ``probe_decay``) and returns its logits (Chen et al.'s Baseline).

    Args:
        backbone: maps images to features of size ``embedding_dim``.
        num_classes: the classes of the training dataset (its class indices).
        embedding_dim: the feature size (the backbone's ``embedding_dim`` if not given).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int | None = None,
        embedding_dim: int | None = None,
        head: str = "centroid",
        probe_steps: int = 100,
        probe_lr: float = 0.1,
        probe_decay: float = 1e-3,
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                f"num_classes must be the number of training classes (2 or more), got "
                f"{num_classes!r}; metabook train fills it in from the dataset"
            )
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        self.backbone = backbone
        dim = embedding_dim if embedding_dim is not None else embedding_size(backbone)
        self.classifier = nn.Linear(dim, num_classes)
        self.head = head
        self.probe_steps, self.probe_lr, self.probe_decay = probe_steps, probe_lr, probe_decay

    @classmethod
    def from_backbone(cls, backbone: nn.Module, ways: int, **hyper: Any) -> TransferBaseline:
        """The baseline around ``backbone`` (``num_classes`` comes from the run: ``metabook
        train`` sets it to the dataset's number of classes)."""
        return cls(backbone, **hyper)

    def loss(self, episode: Episode) -> torch.Tensor:
        """Cross-entropy of every image of the episode (or batch) among all classes."""
        classes = episode.info.get("classes") if episode.info else None
        if classes is None or episode.query_y is None:
            raise ValueError(
                "TransferBaseline trains on episodes that name their dataset classes "
                '(info["classes"], as EpisodeSampler writes) and have query labels'
            )
        classes = torch.as_tensor(classes, device=episode.support_y.device)
        labels = torch.cat([episode.support_y, episode.query_y], dim=-1)
        if classes.dim() == 1:
            classes, labels = classes[None], labels[None]
        targets = torch.gather(classes, 1, labels)
        lead = episode.support_y.dim()  # 1 for an episode, 2 for a batch
        images = torch.cat([episode.support_x, episode.query_x], dim=lead - 1)
        images = images.reshape(-1, *images.shape[lead:])
        return F.cross_entropy(self.classifier(self.backbone(images)), targets.reshape(-1))

    def _one(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor, ways: int
    ) -> torch.Tensor:
        support, query = _embed(self.backbone, support_x, support_y, query_x)
        centre = support.mean(0)
        support, query = centred_unit(support, centre), centred_unit(query, centre)
        if self.head == "centroid":
            return -pairwise_distance(query, prototypes(support, support_y, ways))
        return self._probe(support.detach(), support_y, ways)(query)

    def _probe(self, support: torch.Tensor, labels: torch.Tensor, ways: int) -> nn.Linear:
        """A logistic-regression probe fitted on the support features (gradients are
        enabled for the fit even under ``torch.no_grad``)."""
        probe = nn.Linear(support.shape[-1], ways).to(support.device, support.dtype)
        optimiser = torch.optim.Adam(
            probe.parameters(), lr=self.probe_lr, weight_decay=self.probe_decay
        )
        with torch.enable_grad():
            for _ in range(self.probe_steps):
                optimiser.zero_grad()
                F.cross_entropy(probe(support), labels).backward()
                optimiser.step()
        return probe

    def forward(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        ways: int | None = None,
    ) -> torch.Tensor:
        n = episode_ways(support_y, ways)
        return per_task(lambda sx, sy, qx: self._one(sx, sy, qx, n), support_x, support_y, query_x)
