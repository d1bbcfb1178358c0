"""Every ``§N`` / ``§N.M`` the code cites is a section (and numbered item) of docs/PROTOCOL.md.

The code explains its protocol choices by pointing into docs/PROTOCOL.md; a citation of a section that
the document does not have (it happened: §13 was cited before it was written down) sends the next
engineer nowhere. Citations of other documents (RECORDING.md, DESIGN.md, an RFC) are left alone.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITATION = re.compile(r"§(\d+)(?:\.(\d+))?")
OTHER_DOCUMENTS = re.compile(r"RFC|RECORDING\.md|DESIGN\.md|EVALUATE\.md|BINDER\.md")


def protocol_sections() -> dict[int, set[int]]:
    """Section number → the numbers of its top-level numbered items."""
    sections: dict[int, set[int]] = {}
    current: int | None = None
    for line in (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8").splitlines():
        if heading := re.match(r"## (\d+)\. ", line):
            current = int(heading.group(1))
            sections[current] = set()
        elif current is not None and (item := re.match(r"(\d+)\. ", line)):
            sections[current].add(int(item.group(1)))
    return sections


def citations() -> list[tuple[str, int, int | None]]:
    found = []
    for path in sorted((ROOT / "nova_nb").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OTHER_DOCUMENTS.search(line):
                continue
            for m in CITATION.finditer(line):
                item = int(m.group(2)) if m.group(2) else None
                found.append((f"{path.relative_to(ROOT)}:{number}", int(m.group(1)), item))
    return found


def test_the_code_cites_protocol_sections_that_exist() -> None:
    sections = protocol_sections()
    assert set(range(1, 14)) <= set(sections), sorted(sections)
    cited = citations()
    assert len(cited) > 50  # the scan finds the citations (it would pass vacuously otherwise)
    missing = [
        f"{where}: §{section}{f'.{item}' if item else ''}"
        for where, section, item in cited
        if section not in sections or (item is not None and item not in sections[section])
    ]
    assert not missing, "cited in the code but not in docs/PROTOCOL.md:\n" + "\n".join(missing)
