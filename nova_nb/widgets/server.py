"""A Jupyter server extension that turns on TCP_NODELAY for kernel websockets (on by default).

jupyter_server leaves Nagle's algorithm on for the websocket that carries kernel messages to the page.
Audio chunks and flush messages are small writes that follow other small writes (the kernel's status
messages), so Nagle holds them until the page acknowledges the previous packet; with delayed ACKs that
adds milliseconds to tens of milliseconds to kernel → page messages (``python -m bench.browser`` vs
``--stock``, interleaved runs on a loaded 2-core machine: median kernel → page message 15-28 ms
without, 8-12 ms with).

Installing nova_nb enables it: the wheel's data files put ``etc/jupyter/jupyter_server_config.d/
nova_nb.json`` (``{"ServerApp": {"jpserver_extensions": {"nova_nb.widgets.server": true}}}``) into the
environment, the standard way a package enables its server extension, so any ``jupyter lab`` started
from that environment loads it. (pip's *editable* installs skip a wheel's data files; ``./dev setup``
copies the same file into its ``.venv`` for that reason.) :func:`extension_enabled` says whether it is
(``nova-nb doctor`` reports it). To turn it off: ``jupyter server extension disable nova_nb.widgets.server``.
It changes nothing else; without it everything works, with more latency from the kernel to the page.
"""

from __future__ import annotations

from typing import Any

#: The extension's name, as jupyter_server's configuration spells it.
EXTENSION = "nova_nb.widgets.server"
#: The file the wheel installs under ``{sys.prefix}/etc/jupyter/jupyter_server_config.d``.
CONFIG_FILE = "nova_nb.json"


def extension_enabled() -> bool | None:
    """Whether Jupyter servers started from this environment load this extension (TCP_NODELAY).

    Reads the same configuration as ``jupyter server extension list`` (every ``jupyter_server_config``
    file and ``jupyter_server_config.d`` folder on ``jupyter --paths``' config path). Returns True
    when it is enabled there, False when it is not (or disabled), and None when jupyter_server is
    not installed (no JupyterLab in this environment, nothing to enable).
    """
    try:
        from jupyter_core.paths import jupyter_config_path
        from jupyter_server.extension.config import ExtensionConfigManager
    except ImportError:
        return None
    manager = ExtensionConfigManager(read_config_path=jupyter_config_path())
    return bool(manager.enabled(EXTENSION))


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nova_nb.widgets.server"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    from jupyter_server.services.kernels.websocket import KernelWebsocketHandler

    if getattr(KernelWebsocketHandler, "_nova_nb_nodelay", False):
        return
    original = KernelWebsocketHandler.open

    async def open_with_nodelay(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = await original(self, *args, **kwargs)
        if self.ws_connection is not None:
            self.set_nodelay(True)
        return result

    handler: Any = KernelWebsocketHandler
    handler.open = open_with_nodelay
    handler._nova_nb_nodelay = True
    server_app.log.info("nova_nb.widgets.server: TCP_NODELAY on kernel websockets")
