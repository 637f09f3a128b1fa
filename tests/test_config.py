"""The run configuration: plain data both ways, and every mistake in it named."""

from __future__ import annotations

import io

import pytest
import torch

import metabook as mb
from metabook.config import SCHEMA_VERSION


def test_to_dict_and_back_gives_the_same_configuration():
    config = mb.RunConfig(
        "reptile",
        ways=20,
        shots=5,
        queries=3,
        hyper={"inner_lr": 0.05},
        backbone=mb.BackboneConfig(channels=32),
        data=mb.DataConfig("omniglot:background_small1", rotations=True),
        train=mb.TrainConfig(steps=10, seed=4),
        command="metabook train ...",
    )
    data = config.to_dict()
    assert data["schema"] == SCHEMA_VERSION and data["train"]["seed"] == 4
    assert data["backbone"] == {"name": "conv4", "channels": 32, "norm": "batch"}
    assert mb.RunConfig.from_dict(data) == config
    # plain values only: what torch.load(weights_only=True) reads back
    buffer = io.BytesIO()
    torch.save(data, buffer)
    buffer.seek(0)
    assert mb.RunConfig.from_dict(torch.load(buffer, weights_only=True)) == config
    assert mb.RunConfig.from_dict(mb.RunConfig("protonet").to_dict()).backbone is None


def test_every_mistake_is_named():
    good = mb.RunConfig("protonet").to_dict()
    with pytest.raises(ValueError, match=r"unknown run configuration fields \['wayz'\]"):
        mb.RunConfig.from_dict({**good, "wayz": 5})
    with pytest.raises(ValueError, match=r"unknown train fields \['stepz'\]"):
        mb.RunConfig.from_dict({**good, "train": {"stepz": 5}})
    with pytest.raises(ValueError, match="newer than this metabook's"):
        mb.RunConfig.from_dict({**good, "schema": SCHEMA_VERSION + 1})
    with pytest.raises(ValueError, match="no schema number"):
        mb.RunConfig.from_dict({"method": "protonet"})
    with pytest.raises(ValueError, match="data must be a table"):
        mb.RunConfig.from_dict({**good, "data": 3})
    with pytest.raises(ValueError, match="ways must be a positive integer"):
        mb.RunConfig("protonet", ways=0)
    with pytest.raises(ValueError, match="loss functions in code"):
        mb.RunConfig("maml", hyper={"loss_fn": torch.nn.functional.mse_loss})


def test_episode_ways_and_replace():
    config = mb.RunConfig("protonet", ways=5)
    assert config.episode_ways == 5
    assert config.replace(train_ways=20).episode_ways == 20
    assert config.replace(train_ways=20).ways == 5 and config.train_ways is None
