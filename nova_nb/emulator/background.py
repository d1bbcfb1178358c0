"""Run an :class:`EmulatorServer` on its own event loop in a daemon thread.

Jupyter already runs an asyncio loop in the kernel's main thread, so a notebook cannot
``asyncio.run`` the emulator there, and a server on that loop would stall whenever a cell blocks.
A dedicated thread with its own loop avoids both: clients (the SDK on the notebook's loop) reach it
over loopback TCP like any remote endpoint. The handler runs on the emulator's loop, in that thread.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import threading
from collections.abc import Collection
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from nova_nb.emulator.server import LOOPBACK, Admission, EmulatorServer, EmulatorStateError, StreamHandler
from nova_nb.emulator.sigv4 import EmulatorCredentials

logger = logging.getLogger(__name__)

DEFAULT_START_TIMEOUT_S: Final = 10.0
DEFAULT_STOP_TIMEOUT_S: Final = 5.0
#: Time allowed beyond ``stop(timeout)`` for the loop to finish and the thread to exit.
THREAD_JOIN_SLACK_S: Final = 2.0


class BackgroundEmulator:
    """An emulator server running in a background thread.

    ``start()`` returns once the server listens; ``stop()`` is bounded, idempotent and also runs at
    interpreter exit. Both are plain (blocking) calls, safe from inside a running event loop.
    """

    def __init__(
        self,
        *,
        handler: StreamHandler,
        credentials: EmulatorCredentials | None = None,
        region: str = "us-east-1",
        host: str = LOOPBACK,
        port: int = 0,
        tls_dir: str | Path | None = None,
        admission: Admission | None = None,
        model_ids: Collection[str] | None = None,
        refuse_retired: bool = False,
    ) -> None:
        # Constructed here so invalid options fail in the caller's thread, with its traceback.
        self.server = EmulatorServer(
            handler=handler,
            credentials=credentials,
            region=region,
            host=host,
            port=port,
            tls_dir=tls_dir,
            admission=admission,
            model_ids=model_ids,
            refuse_retired=refuse_retired,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self._started = False
        self._stopped = False

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "running" if self._started else "not started"
        return f"BackgroundEmulator({state}, endpoint={self.endpoint_uri!r})"

    @property
    def endpoint_uri(self) -> str:
        return self.server.endpoint_uri

    @property
    def ca_file(self) -> Path:
        return self.server.ca_file

    @property
    def credentials(self) -> EmulatorCredentials:
        return self.server.credentials

    @property
    def region(self) -> str:
        return self.server.region

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The emulator's event loop (to schedule work on it with ``run_coroutine_threadsafe``)."""
        return self._loop

    @property
    def running(self) -> bool:
        return self._started and not self._stopped

    def start(self, timeout: float = DEFAULT_START_TIMEOUT_S) -> Self:
        """Start the thread and the server; return once it listens. Raises ``TimeoutError``."""
        with self._state_lock:
            if self._stopped:
                raise EmulatorStateError("a stopped BackgroundEmulator cannot be restarted; create a new one")
            if self._started:
                return self
            self._started = True
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._thread = threading.Thread(
                target=self._run_loop, args=(loop,), name="nova-nb-emulator", daemon=True
            )
            self._thread.start()
            atexit.register(self.stop)
        future = asyncio.run_coroutine_threadsafe(self.server.start(), loop)
        try:
            future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            self.stop()
            raise EmulatorStateError(f"the emulator did not start listening within {timeout:.1f} s") from None
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in tasks:
                    task.cancel()
                if tasks:
                    loop.run_until_complete(asyncio.wait(tasks, timeout=THREAD_JOIN_SLACK_S))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """Stop the server and the thread, waiting at most about ``timeout`` seconds."""
        with self._state_lock:
            if self._stopped or not self._started:
                self._stopped = True
                return
            self._stopped = True
        atexit.unregister(self.stop)
        loop, thread = self._loop, self._thread
        assert loop is not None and thread is not None
        if loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self.server.stop(timeout), loop)
            try:
                future.result(timeout + THREAD_JOIN_SLACK_S)
            except concurrent.futures.TimeoutError:
                logger.warning("the emulator did not stop within %.1f s; abandoning it", timeout)
            except Exception:
                logger.exception("stopping the emulator failed")
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        if thread is not threading.current_thread():
            thread.join(THREAD_JOIN_SLACK_S)
            if thread.is_alive():
                logger.warning("the emulator thread is still running; it is a daemon and will not block exit")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
