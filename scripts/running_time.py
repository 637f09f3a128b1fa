"""Write a chapter's measured running time into its text.

    python scripts/running_time.py chapters/03_maml_reptile.md

Each chapter says "**Running time** on two CPU cores: ... N minutes with the CPU settings";
`make notebook` calls this script after executing a chapter, which replaces N by the time
the executed notebook took (from the first cell's start to the last cell's end, as the
kernel recorded them), when it was executed with the CPU settings. The test
`test_the_stated_running_time_is_that_of_the_committed_outputs` checks the two agree.
"""

from __future__ import annotations

import datetime
import json
import re
import sys
from pathlib import Path

SENTENCE = re.compile(r"(\d+)(\s+)(minutes?|seconds?)(\s+with\s+the\s+CPU\s+settings)")


def execution_seconds(notebook: dict) -> float:
    stamps = [
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        for cell in notebook["cells"]
        for key, value in cell.get("metadata", {}).get("execution", {}).items()
        if key in ("iopub.execute_input", "shell.execute_reply")
    ]
    return (max(stamps) - min(stamps)).total_seconds()


def settings(notebook: dict) -> str | None:
    """The scale `mb.chapter_setup` printed ("quick", "cpu" or "full")."""
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            match = re.search(r"settings: (\w+)", "".join(output.get("text", "")))
            if match:
                return match.group(1)
    return None


def main(source: Path) -> int:
    notebook = json.loads(source.with_suffix(".ipynb").read_text(encoding="utf-8"))
    if settings(notebook) != "cpu":
        print(f"{source}: not executed with the CPU settings; running time left as it was")
        return 0
    seconds = execution_seconds(notebook)
    # from 90 s on, whole minutes (two or more)
    stated = f"{round(seconds)} seconds" if seconds < 90 else f"{round(seconds / 60)} minutes"
    text = source.read_text(encoding="utf-8")
    number, unit = stated.split(" ")
    new, count = SENTENCE.subn(lambda m: f"{number}{m.group(2)}{unit}{m.group(4)}", text, 1)
    if count == 0:
        print(f"{source}: no '... with the CPU settings' sentence to update", file=sys.stderr)
        return 1
    if new != text:
        source.write_text(new, encoding="utf-8")
    print(f"{source}: {stated} with the CPU settings")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
