"""Recipes: packaged TOML configurations, merged with the command line's options."""

from __future__ import annotations

import pytest
import torch

import metabook as mb
from metabook import recipes
from metabook.runs import load_dataset, train_and_validation_classes
from tests.conftest import write_omniglot_split
from tests.test_cli import run


def test_the_packaged_recipes_name_their_minimal_split_and_a_validation_alphabet(data_root):
    assert recipes.names() == ["omniglot_small1", "omniglot_small2"]
    for name in recipes.names():
        config = recipes.load(name)
        split = name.removeprefix("omniglot_")
        assert config.data.dataset == f"omniglot:background_{split}"
        assert config.ways == 20 and config.shots == 1
        data = load_dataset(config.data.dataset, data_root, rotations=config.data.rotations)
        train, val = train_and_validation_classes(config, data)
        held = set(config.data.val_alphabets)
        assert held and held < set(data.alphabets)
        # the validation alphabets are out of training, rotations included, and each one
        # holds a 20-way episode of unrotated characters
        assert not any(data.classes[c].split("/")[0] in held for c in train.tolist())
        assert all(data.classes[c].count("/") == 1 for c in val.tolist())
        assert int(torch.bincount(data.class_alphabet[val]).max()) >= 20
        assert len(train) + len(val) * 4 == len(data.classes)
        # the text, comments included, is the file that read() parses
        assert recipes.tomllib.loads(recipes.recipe_text(name)) == recipes.read(name)
        assert recipes.recipe_text(name).startswith("# Omniglot's")


def test_a_random_validation_split_keeps_rotated_copies_out_of_training(data_root):
    config = mb.RunConfig("protonet", data=mb.DataConfig("omniglot:background_small1"))
    data = load_dataset(config.data.dataset, data_root, rotations=True)
    train, val = train_and_validation_classes(config, data)
    characters = {data.classes[c] for c in val.tolist()}
    assert len(characters) == round(0.2 * 136)
    for c in train.tolist():
        assert "/".join(data.classes[c].split("/")[:2]) not in characters


@pytest.fixture
def root(tmp_path, monkeypatch):
    write_omniglot_split(
        tmp_path / "omniglot",
        "evaluation",
        {"Atlantean": 4, "Kannada": 4, "Oriya": 4},
        drawers=4,
        monkeypatch=monkeypatch,
    )
    return tmp_path


def test_options_on_the_command_line_replace_the_recipe(root, tmp_path, capsys):
    recipe = tmp_path / "small.toml"
    recipe.write_text(
        'method = "protonet"\nways = 3\nqueries = 2\n\n[data]\n'
        'dataset = "omniglot:evaluation"\nval_alphabets = ["Kannada"]\n\n'
        "[train]\nsteps = 50\nlr = 0.01\nval_episodes = 2\nval_every = 1\n"
    )
    out = tmp_path / "run"
    status, _, err = run(
        capsys,
        f"train --config {recipe} --steps 2 --queries 1 --out {out} --data-root {root} "
        "--device cpu --quiet",
    )
    assert status == 0, err
    _, config = mb.load_run(out / "last.pt")
    assert (config.method, config.ways, config.queries) == ("protonet", 3, 1)
    assert (config.train.steps, config.train.lr) == (2, 0.01)
    assert config.data.val_alphabets == ("Kannada",) and config.data.augment is False
    assert config.command.startswith(f"metabook train --config {recipe}")


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ('method = "protonet"\n[data]\nsize = 3\n', "unknown data fields ['size']"),
        ("method = \n", "is not valid TOML"),
        ('method = "protonet"\nschema = 1\n', "sets 'schema', which a run writes itself"),
        ("ways = 3\n", "names no method: give --method"),
        ('method = "protonet"\n[data]\nval_alphabets = "Greek"\n', "must be a list of alphabet"),
    ],
)
def test_a_bad_recipe_is_one_line(tmp_path, capsys, text, phrase):
    recipe = tmp_path / "bad.toml"
    recipe.write_text(text)
    status, _, err = run(capsys, f"train --config {recipe} --out {tmp_path / 'run'}")
    assert status == 2 and len(err.strip().splitlines()) == 1 and phrase in err, err
    assert not (tmp_path / "run").exists()


def test_an_unknown_recipe_name_lists_the_packaged_ones(tmp_path, capsys):
    status, _, err = run(capsys, f"train --config omniglot_small3 --out {tmp_path / 'run'}")
    assert status == 2 and "no recipe named 'omniglot_small3'" in err
    assert "omniglot_small1, omniglot_small2" in err


def test_a_validation_alphabet_that_is_not_there_is_refused(root, tmp_path, capsys, monkeypatch):
    status, _, err = run(
        capsys,
        f"train --method protonet --dataset omniglot:evaluation --ways 3 --val-alphabets "
        f"Greek,Kannada --out {tmp_path / 'run'} --data-root {root} --device cpu",
    )
    assert status == 2 and "validation alphabets ['Greek'] are not in" in err, err
    other = tmp_path / "other"
    write_omniglot_split(
        other / "omniglot",
        "evaluation",
        {"Atlantean": 6, "Kannada": 4},
        drawers=4,
        monkeypatch=monkeypatch,
    )
    status, _, err = run(
        capsys,
        f"train --method protonet --dataset omniglot:evaluation --ways 5 --queries 1 "
        f"--val-alphabets Kannada --out {tmp_path / 'run'} --data-root {other} --device cpu",
    )
    assert status == 2 and "no validation alphabet has 5 characters" in err, err
    assert not (tmp_path / "run").exists()


def test_values_replace_fields_and_sections_of_a_copy():
    table = {"method": "protonet", "data": {"dataset": "omniglot:evaluation", "augment": True}}
    merged = recipes.with_values(table, {"ways": 3, "data.augment": False, "train.steps": 2})
    assert merged == {
        "method": "protonet",
        "ways": 3,
        "data": {"dataset": "omniglot:evaluation", "augment": False},
        "train": {"steps": 2},
    }
    assert table["data"]["augment"] is True and "train" not in table  # the recipe is intact
