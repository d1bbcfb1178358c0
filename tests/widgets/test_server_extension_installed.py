"""The TCP_NODELAY server extension is on in the environment the README's commands make.

A regular install gets its config file from the wheel's data files; ``./dev setup`` (an editable
install, which skips data files) copies the same file. Either way a ``jupyter lab`` started from this
environment must load ``nova_nb.widgets.server`` without anyone running ``extension enable``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nova_nb.widgets import server

SHIPPED = (
    Path(__file__).resolve().parents[2] / "jupyter-config" / "jupyter_server_config.d" / server.CONFIG_FILE
)


def test_the_shipped_config_enables_the_extension() -> None:
    config = json.loads(SHIPPED.read_text(encoding="utf-8"))
    assert config == {"ServerApp": {"jpserver_extensions": {server.EXTENSION: True}}}


def test_this_environment_has_the_extension_enabled() -> None:
    installed = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / server.CONFIG_FILE
    assert installed.is_file(), f"{installed} is missing: run ./dev setup (or pip install the wheel)"
    assert server.extension_enabled() is True
