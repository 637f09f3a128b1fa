"""Transfer baselines: a classifier pretrained on every training class, then a simple head.

Defined in the chapter "Siamese networks and prototype losses". Chen et al. (2019) and
Tian et al. (2020) showed that a network trained as an ordinary classifier on all the
training classes, with a simple classifier fitted on its features at test time, often
matches meta-learners: the baseline a meta-learning result has to beat. Wang et al.
(2019)'s SimpleShot is the nearest-centroid version, on centred, L2-normalised features;
Chen et al.'s Baseline fits a linear classifier on the features (a probe) and also
fine-tunes the whole network on the support set.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metabook.data.episodes import Episode
from metabook.learners.base import FewShotLearner, embedding_size, episode_ways, per_task
from metabook.learners.metric import _embed, pairwise_distance, prototypes

__all__ = ["TransferBaseline", "centred_unit"]

HEADS = ("centroid", "probe", "finetune")


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
    ``probe_decay``) and returns its logits (Chen et al.'s Baseline), and
    ``head="finetune"`` fine-tunes a copy of the backbone together with a linear head on the
    support set (``finetune_steps`` of SGD at ``finetune_lr`` on the cross-entropy of the
    scores times ``finetune_scale``; the head starts at the class means, ``W = 2 c_k``,
    ``b = -|c_k|^2``, which scores like the centroid head: for a backbone without batch
    statistics, zero steps give the centroid head's scores plus one). Choose the
    fine-tuning's steps and step size on validation classes: they are hyper-parameters of
    the baseline.

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
        finetune_steps: int = 10,
        finetune_lr: float = 0.01,
        finetune_scale: float = 1.0,
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
        self.finetune_steps, self.finetune_lr = finetune_steps, finetune_lr
        self.finetune_scale = finetune_scale

    def use_head(self, head: str, **settings: Any) -> TransferBaseline:
        """Switch to ``head`` (one of ``centroid``, ``probe``, ``finetune``) with its
        ``settings`` (e.g. ``probe_lr=0.1``, ``finetune_steps=20``), keeping the trained
        backbone: one trained classifier scored with several heads. Returns the learner."""
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        unknown = [name for name in settings if not name.startswith(f"{head}_")]
        unknown += [name for name in settings if not hasattr(self, name)]
        if unknown:
            raise ValueError(
                f"{unknown[0]!r} is not a setting of the {head} head: give its "
                f"{head}_... attributes (e.g. probe_lr, finetune_steps)"
            )
        self.head = head
        for name, value in settings.items():
            setattr(self, name, value)
        return self

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
        if self.head == "finetune":
            return self._finetuned(support_x, support_y, query_x, ways)
        support, query = _embed(self.backbone, support_x, support_y, query_x)
        centre = support.mean(0)
        support, query = centred_unit(support, centre), centred_unit(query, centre)
        if self.head == "centroid":
            return -pairwise_distance(query, prototypes(support, support_y, ways))
        return self._probe(support.detach(), support_y, ways)(query)

    def _finetuned(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor, ways: int
    ) -> torch.Tensor:
        """The query scores of a copy of the backbone and a linear head on its centred unit
        features, fine-tuned on the support set; the learner's own weights are untouched
        (gradients are enabled for the fit even under ``torch.no_grad``)."""
        buffers = dict(self.backbone.named_buffers())

        def features(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(self.backbone, {**params, **buffers}, (x,))

        with torch.enable_grad():
            params = {
                n: p.detach().clone().requires_grad_() for n, p in self.backbone.named_parameters()
            }
            z = features(params, support_x).detach()
            centres = prototypes(centred_unit(z, z.mean(0)), support_y, ways)
            weight = (2 * centres).requires_grad_()
            bias = (-centres.pow(2).sum(-1)).requires_grad_()
            tensors = [*params.values(), weight, bias]
            for _ in range(self.finetune_steps):
                z = features(params, support_x)
                scores = centred_unit(z, z.mean(0)) @ weight.T + bias
                loss = F.cross_entropy(self.finetune_scale * scores, support_y)
                grads = torch.autograd.grad(loss, tensors, allow_unused=True)
                with torch.no_grad():  # plain SGD, written out (torch.optim's rounds differently)
                    for tensor, grad in zip(tensors, grads, strict=True):
                        if grad is not None:
                            tensor -= self.finetune_lr * grad
        with torch.no_grad():  # support and queries in one call, as the other heads
            support, query = _embed(lambda x: features(params, x), support_x, support_y, query_x)
            return centred_unit(query, support.mean(0)) @ weight.T + bias

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
