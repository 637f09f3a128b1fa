"""The registry of learners: every entry is built from a run configuration, trained for two
steps, saved, and rebuilt by load_learner with identical predictions; defaults, checks and
checkpoints of metabook 0.1."""

from __future__ import annotations

import pytest
import torch

import metabook as mb
from metabook.data import EpisodeSampler
from metabook.registry import LEARNERS, hyper_parameters, resolve

WAYS, SHOTS, QUERIES = 3, 1, 2


def tiny_images(classes: int = 8, per_class: int = 4) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(classes).repeat_interleave(per_class)
    return torch.utils.data.TensorDataset(
        torch.rand(labels.numel(), 1, 28, 28, generator=g), labels
    )


def predictions(learner: mb.FewShotLearner, episode: mb.data.Episode) -> torch.Tensor:
    """Class scores of ``episode`` (the MANN orders its support set with the global
    generator, so it is seeded)."""
    learner.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        return learner(episode.support_x, episode.support_y, episode.query_x, episode.ways)


@pytest.mark.parametrize("method", list(LEARNERS))
def test_every_method_is_rebuilt_exactly_from_its_checkpoint(method, tmp_path):
    # a classifier over the dataset's classes is sized from the data (metabook train does it)
    sized = "num_classes" in hyper_parameters(LEARNERS[method].learner)
    hyper = {"num_classes": 8} if sized else {}
    config = mb.RunConfig(method, ways=WAYS, shots=SHOTS, queries=QUERIES, hyper=hyper)
    mb.seed_everything(0)
    learner = mb.build_learner(config)
    assert isinstance(learner, LEARNERS[method].learner)
    tasks = EpisodeSampler(tiny_images(), WAYS, SHOTS, QUERIES, seed=0)
    history = mb.meta_train(
        learner,
        tasks,
        steps=2,
        meta_batch=2,
        checkpoint_dir=tmp_path,
        config=resolve(config),
        device="cpu",
        progress=False,
    )
    assert len(history.losses) == 2
    episode = EpisodeSampler(tiny_images(), WAYS, SHOTS, QUERIES, seed=1).sample()
    expected = predictions(learner, episode)
    rebuilt = mb.load_learner(tmp_path / "last.pt")
    assert type(rebuilt) is type(learner)
    for (name, a), (_, b) in zip(
        learner.state_dict().items(), rebuilt.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    torch.testing.assert_close(predictions(rebuilt, episode), expected, rtol=0, atol=0)
    _, saved = mb.load_run(tmp_path / "last.pt")
    assert saved == resolve(config)  # the checkpoint holds the whole configuration


def test_resolve_writes_out_the_defaults_and_is_idempotent():
    config = resolve(mb.RunConfig("maml", ways=5, hyper={"inner_lr": 0.1}))
    assert config.hyper == {"inner_lr": 0.1, "inner_steps": 1, "test_steps": 3}
    assert config.backbone == mb.BackboneConfig()
    assert resolve(config) == config
    assert resolve(mb.RunConfig("mann")).backbone.norm == "layer"
    assert resolve(mb.RunConfig("metalstm")).backbone.channels == 32
    assert resolve(mb.RunConfig("fomaml")).hyper["first_order"] is True


def test_what_each_method_builds():
    maml = mb.build_learner(mb.RunConfig("maml", ways=4, hyper={"inner_lr": 0.2}))
    assert maml.inner_lr == 0.2 and maml.test_steps == 3 and not maml.first_order
    assert maml.model.head.out_features == 4  # a learner with a head gets a 4-way head
    protonet = mb.build_learner(mb.RunConfig("protonet", ways=4))
    assert protonet.backbone.head is None and protonet.distance == "sqeuclidean"
    koch = mb.build_learner(mb.RunConfig("siamese", hyper={"head": "koch"}))
    assert koch.verifier.in_features == 64  # sized from the backbone's embedding
    mann = mb.build_learner(mb.RunConfig("mann", ways=7))
    assert mann.max_ways == 7 and mann.controller.hidden_size == 128
    small = mb.RunConfig("protonet", data=mb.DataConfig(image_size=32, in_channels=3))
    assert mb.build_learner(small).backbone(torch.zeros(2, 3, 32, 32)).shape == (2, 256)


def test_bad_configurations_are_refused_with_what_to_do():
    with pytest.raises(ValueError, match="unknown method 'anil': choose from protonet"):
        mb.build_learner(mb.RunConfig("anil"))
    with pytest.raises(ValueError, match="maml has no hyper-parameter inner_rate: choose from"):
        mb.build_learner(mb.RunConfig("maml", hyper={"inner_rate": 0.1}))
    with pytest.raises(ValueError, match="fixed 5-way head"):
        resolve(mb.RunConfig("reptile", ways=5, train_ways=20))
    assert resolve(mb.RunConfig("protonet", ways=5, train_ways=20)).episode_ways == 20
    with pytest.raises(ValueError, match="unknown backbone 'resnet12'"):
        mb.build_learner(mb.RunConfig("protonet", backbone=mb.BackboneConfig("resnet12")))


def test_the_table_is_consistent():
    for name, method in LEARNERS.items():
        assert method.name == name and method.summary
        assert issubclass(method.learner, mb.FewShotLearner)
        assert set(method.hyper) <= set(hyper_parameters(method.learner)), name
    # Meta-SGD passes its keyword arguments on to MAML: they are its hyper-parameters too
    assert {"inner_steps", "first_order", "test_steps"} <= set(hyper_parameters(mb.MetaSGD))
    with pytest.raises(ValueError, match="family"):
        mb.Method("x", mb.ProtoNet, "metrics", "typo in the family")


def test_a_checkpoint_of_metabook_0_1_still_loads(tmp_path):
    """``metabook train`` 0.1 saved a hand-built dict as the configuration."""
    learner = mb.build_learner(mb.RunConfig("protonet", ways=5))
    legacy = {
        "state_dict": learner.state_dict(),
        "step": 7,
        "history": {},
        "learner": "ProtoNet",
        "config": {
            "method": "protonet",
            "backbone": "Conv4",
            "ways": 5,
            "preprocessing": {
                "image_size": 28,
                "rotations": True,
                "augment": False,
                "ink": 1.0,
                "dataset": "omniglot:background_small1",
            },
            "args": {"shots": 1, "queries": 5, "steps": 7, "seed": 3, "within_alphabet": True},
            "command": "metabook train --method protonet",
        },
    }
    torch.save(legacy, tmp_path / "old.pt")
    rebuilt, config = mb.load_run(tmp_path / "old.pt")
    assert config.data.rotations and config.data.within_alphabet and config.train.seed == 3
    assert config.data.dataset == "omniglot:background_small1" and config.train.steps == 7
    for a, b in zip(rebuilt.parameters(), learner.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_checkpoint_without_configuration_says_how_to_load_it(tmp_path):
    mb.checkpoints.Checkpoint({"w": torch.zeros(1)}, 1, learner="Custom").save(tmp_path / "c.pt")
    with pytest.raises(
        ValueError, match=r"no run configuration .*load_checkpoint\(path, learner\)"
    ):
        mb.load_learner(tmp_path / "c.pt")
