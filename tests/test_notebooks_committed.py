"""Committed notebooks are the project's face: each is saved with its outputs, none with an error.

nbval (in the test command) proves the notebooks run; this proves what a reader sees on GitHub or
nbviewer without running them: every code cell that ran has its output saved, and no output is an
error or text on stderr (a warning or a traceback in a pink box). ``./dev notebooks`` re-executes and
saves them all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 8


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_with_outputs_and_no_errors(path: Path) -> None:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    code = [c for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    assert code, f"{path.name} has no code"
    unexecuted = [i for i, c in enumerate(code) if c.get("execution_count") is None]
    assert not unexecuted, f"{path.name}: code cells {unexecuted} were never run (./dev notebooks)"
    with_output = [c for c in code if c.get("outputs")]
    # Some cells only define or close things; most must show something.
    assert len(with_output) >= len(code) // 2, f"{path.name}: most cells have no saved output"
    for i, cell in enumerate(code):
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            assert kind != "error", f"{path.name} code cell {i}: an error is saved: {out.get('ename')}"
            if kind == "stream" and out.get("name") == "stderr":
                text = "".join(out.get("text", ""))[:300]
                raise AssertionError(f"{path.name} code cell {i}: stderr is saved: {text}")
