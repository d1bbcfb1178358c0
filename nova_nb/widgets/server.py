"""A Jupyter server extension that turns on TCP_NODELAY for kernel websockets (opt-in).

jupyter_server leaves Nagle's algorithm on for the websocket that carries kernel messages to the page.
Audio chunks and flush messages are small writes that follow other small writes (the kernel's status
messages), so Nagle holds them until the page acknowledges the previous packet; with delayed ACKs that
adds milliseconds to tens of milliseconds to kernel → page messages (``python -m bench.browser`` vs
``--stock``, interleaved runs on a loaded 2-core machine: median kernel → page message 15-28 ms
without, 8-12 ms with). Enable with::

    jupyter server extension enable nova_nb.widgets.server     # or --sys-prefix in an environment

or for one run: ``jupyter lab --ServerApp.jpserver_extensions='{"nova_nb.widgets.server": True}'``.
It changes nothing else; without it everything works, with more latency from the kernel to the page.
"""

from __future__ import annotations

from typing import Any


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
