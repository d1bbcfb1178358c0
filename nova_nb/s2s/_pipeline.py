"""Small building blocks of the session pipelines (see :class:`nova_nb.s2s.session.S2SSession`)."""

from __future__ import annotations

import asyncio
from collections import deque

#: Events kept for a consumer of events() that reads slowly; older ones are dropped and counted.
EVENT_BUFFER_MAX = 20_000


class Channel[T]:
    """A single-consumer queue for one event loop, that can be ended and inspected.

    Unlike ``asyncio.Queue`` the items are a plain deque the session may edit in place (mark the last
    chunk final, drop everything on barge-in), and ``get()`` returns None once it is ended and drained.
    """

    def __init__(self, maxlen: int | None = None) -> None:
        self.items: deque[T] = deque(maxlen=maxlen)
        self._wakeup = asyncio.Event()
        self.ended = False
        self.dropped = 0

    def put(self, item: T) -> None:
        if self.ended:
            return
        if self.items.maxlen is not None and len(self.items) == self.items.maxlen:
            self.dropped += 1
        self.items.append(item)
        self._wakeup.set()

    def end(self) -> None:
        self.ended = True
        self._wakeup.set()

    async def get(self) -> T | None:
        """Next item, or None once ended and drained."""
        while not self.items:
            if self.ended:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        return self.items.popleft()
