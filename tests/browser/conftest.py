"""Browser tests: JupyterLab + Debian's chromium + Playwright. Skipped (with the reason) when chromium
or playwright is missing; scripts/install-browser-deps.sh installs them where that is possible."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import harness

_reason = harness.unavailable_reason()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _reason is None:
        return
    skip = pytest.mark.skip(reason=f"browser tests need chromium and playwright: {_reason}")
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    return harness.artifacts_dir()


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lab")


@pytest.fixture(scope="session")
def fake_mic(lab_root: Path) -> Path:
    return harness.make_fake_mic_wav(lab_root / "fake-mic.wav")


@pytest.fixture(scope="session")
def lab(lab_root: Path) -> Iterator[harness.JupyterLab]:
    server = harness.JupyterLab(lab_root)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def page_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """live.js and the worklet beside a page that stands in for anywidget (no Jupyter)."""
    root = tmp_path_factory.mktemp("page")
    for name in ("live.js", "audio_worklet.js"):
        shutil.copy(harness.WIDGETS_DIR / name, root / name)
    shutil.copy(Path(__file__).parent / "fake_model.html", root / "index.html")
    return root
