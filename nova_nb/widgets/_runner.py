"""An asyncio event loop on a thread of its own, for sessions driven by widgets.

A widget's session must keep running while the user runs other cells, including cells that block the
kernel's main thread (``time.sleep``, a long computation), and its button and microphone handlers
arrive on subshell threads or the main thread depending on the JupyterLab setting. Running the session
on a dedicated loop makes all of that the same case: handlers hand work over with
``call_soon_threadsafe`` / :meth:`LoopThread.submit`, and nothing depends on the kernel's own loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any

from ..errors import StateError


class LoopThread:
    """A daemon thread running one event loop until :meth:`stop`."""

    def __init__(self, name: str = "nova-nb-session") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    @property
    def thread(self) -> threading.Thread:
        """The thread the loop runs on."""
        return self._thread

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self.loop.is_closed()

    def submit[T](self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the loop; returns a thread-safe future (callable from any thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run[T](self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait for its result, at most ``timeout`` seconds.

        Never call this from the loop's own thread (it would wait for itself).
        """
        if threading.current_thread() is self._thread:
            raise StateError(
                "LoopThread.run was called from its own loop thread, where it would wait for itself; "
                "await the coroutine there instead"
            )
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"did not finish within {timeout:g} s") from None

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
