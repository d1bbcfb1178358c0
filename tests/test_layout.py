"""The layout is a contract: dependencies flow one way, and each protocol fact lives in one place.

Read from the source with :mod:`ast`, not by importing, so a lazy import inside a function counts
as much as one at the top of a module. Floors, from the top: ``cli``, ``widgets``, ``analysis`` →
``s2s`` → ``protocol``, ``audio`` → ``errors``; ``emulator`` → ``protocol``, ``audio`` (and ``s2s``
only in ``emulator/local.py``, the provider it offers).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from nova_nb.protocol import catalog, wire

PACKAGE = Path(__file__).resolve().parents[1] / "nova_nb"

#: What each floor may import from nova_nb (a module's own package is always allowed).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "audio": {"errors"},
    "protocol": {"errors"},
    "s2s": {"errors", "audio", "protocol"},
    "emulator": {"errors", "audio", "protocol"},
    "analysis": {"errors", "audio", "protocol", "s2s"},
    "widgets": {"errors", "audio", "protocol", "s2s", "analysis"},
    "cascade": {"errors", "audio", "protocol", "s2s", "emulator"},
    "cli": {"errors", "audio", "protocol", "s2s", "emulator", "analysis", "widgets", "cascade"},
}
#: The one place the emulator side reaches up: the ``local`` provider is the amazon_nova provider
#: bound to a background emulator, so it needs the provider (DESIGN: "and s2s only for local").
EXCEPTIONS = {("emulator/local.py", "s2s")}
#: Third-party packages that would tie a floor to Jupyter, the network or a loop.
JUPYTER = ("IPython", "ipywidgets", "anywidget", "traitlets", "ipykernel", "jupyter", "jupyter_server")
IO = ("asyncio", "socket", "ssl", "threading", "aws_sdk_bedrock_runtime", "smithy_http", "h2")


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def floor_of(rel: str) -> str:
    first = rel.split("/")[0]
    return first.removesuffix(".py")


def imported(rel: str, tree: ast.Module) -> Iterator[tuple[str, int]]:
    """Every module name ``rel`` imports (relative imports resolved), with the line."""
    # The package a relative import starts from: the module's folder (for __init__.py, its own).
    package = ["nova_nb", *rel.removesuffix(".py").split("/")][:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            yield name, node.lineno
            for alias in node.names:  # `from . import x` names a module too
                yield f"{name}.{alias.name}", node.lineno


def test_every_floor_is_known() -> None:
    floors = {floor_of(rel) for rel, _ in modules()} - {"__init__"}
    assert floors <= set(ALLOWED), f"new top-level module(s) {floors - set(ALLOWED)}: add them to ALLOWED"


def test_dependencies_flow_one_way() -> None:
    wrong = []
    for rel, tree in modules():
        floor = floor_of(rel)
        if floor == "__init__":
            continue
        for name, line in imported(rel, tree):
            parts = name.split(".")
            if parts[0] != "nova_nb" or len(parts) < 2:
                continue
            target = parts[1]
            if target in (floor, "__version__") or target not in ALLOWED:
                continue
            if target not in ALLOWED[floor] and (rel, target) not in EXCEPTIONS:
                wrong.append(f"nova_nb/{rel}:{line} ({floor}) imports {name}")
    assert not wrong, "imports that run back up:\n" + "\n".join(wrong)


@pytest.mark.parametrize("floor", ["s2s", "protocol", "audio"])
def test_core_floors_never_import_jupyter(floor: str) -> None:
    found = [
        f"nova_nb/{rel}:{line} imports {name}"
        for rel, tree in modules()
        if floor_of(rel) == floor
        for name, line in imported(rel, tree)
        if name.split(".")[0] in JUPYTER
    ]
    assert not found, "\n".join(found)


def test_protocol_is_pure() -> None:
    found = [
        f"nova_nb/{rel}:{line} imports {name}"
        for rel, tree in modules()
        if floor_of(rel) == "protocol"
        for name, line in imported(rel, tree)
        if name.split(".")[0] in IO
    ]
    assert not found, "the protocol floor does no I/O and runs no loop:\n" + "\n".join(found)


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def test_event_shapes_live_only_in_protocol() -> None:
    """No module outside ``protocol/`` spells a wire event name: it uses ``protocol.wire``'s."""
    names = set(wire.INPUT_EVENT_NAMES) | set(wire.OUTPUT_EVENT_NAMES)
    found = []
    for rel, tree in modules():
        if floor_of(rel) == "protocol":
            continue
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in names and id(node) not in docs:
                found.append(f"nova_nb/{rel}:{node.lineno} {node.value!r}")
    assert not found, "wire event names outside nova_nb/protocol:\n" + "\n".join(found)


def test_voice_lists_live_only_in_protocol() -> None:
    """Voice ids are listed once, in the catalog. Elsewhere a module may name a voice or two (a
    default, an example); three or more distinct ids in one module is a second list."""
    voices = {v for model in catalog.MODELS.values() for v in model.voices}
    found = []
    for rel, tree in modules():
        if floor_of(rel) == "protocol":
            continue
        docs = _docstrings(tree)
        named = {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in voices and id(node) not in docs
        }
        if len(named) >= 3:
            found.append(f"nova_nb/{rel}: {sorted(named)}")
    assert not found, "voice lists outside nova_nb/protocol/catalog.py:\n" + "\n".join(found)
