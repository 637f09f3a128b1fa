"""Download the public data files the test suite reads into one folder (METABOOK_DATA).

    python scripts/fetch_data.py data        # then: METABOOK_DATA=data make test

Each file comes from its official source through metabook's own checked download (HTTP
status, length and, where published, MD5; an interrupted download leaves nothing behind).
Files already there are kept. The ORL faces have no source that publishes a checksum: put
the folder s1..s40 in ``<folder>/orl_faces`` yourself (the tests of the faces need it).
Run it with the project's Python (``.venv/bin/python``, after ``make .venv/.installed``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metabook.data.omniglot import OMNIGLOT_FILES, ONE_SHOT_RUNS  # noqa: E402
from metabook.data.text import BANKING77, CLINC150  # noqa: E402
from metabook.files import find_or_download  # noqa: E402

FILES = [
    ("omniglot", OMNIGLOT_FILES["background_small1"]),
    ("omniglot", OMNIGLOT_FILES["background_small2"]),
    ("omniglot", ONE_SHOT_RUNS),
    ("clinc150", CLINC150),
    ("banking77", BANKING77["train"]),
    ("banking77", BANKING77["test"]),
]


def main(folder: str) -> int:
    root = Path(folder).resolve()
    for dataset, remote in FILES:
        path = find_or_download(dataset, remote, root / dataset, download_if_missing=True)
        print(f"{dataset}: {path}")
    if not (root / "orl_faces" / "s1").is_dir():
        print(f"the ORL faces are not in {root / 'orl_faces'}: put the folders s1..s40 there")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "data"))
