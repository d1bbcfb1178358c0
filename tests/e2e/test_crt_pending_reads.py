"""A body read cancelled by an abort must not make awscrt's own callbacks raise.

awscrt resolves waiting reads from its C thread (``_on_body``, ``_resolve_pending_chunk_futures``);
a cancelled read's future used to raise ``InvalidStateError`` there, printed as a traceback. These run
awscrt's real callbacks against the queue the transport installs on every stream (:class:`PendingReads`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
from types import SimpleNamespace

from awscrt.aio.http import AIOHttpClientStreamUnified

from nova_nb.s2s.providers.amazon_nova._crt import PendingReads


def stream_state(reads: collections.deque) -> SimpleNamespace:  # type: ignore[type-arg]
    # The attributes awscrt's callbacks use, as its stream holds them.
    return SimpleNamespace(
        _deque_lock=threading.Lock(), _chunk_futures=reads, _received_chunks=collections.deque()
    )


def test_a_chunk_for_a_cancelled_read_is_kept_for_the_next_read() -> None:
    cancelled: concurrent.futures.Future[bytes] = concurrent.futures.Future()
    cancelled.cancel()
    state = stream_state(PendingReads([cancelled]))
    AIOHttpClientStreamUnified._on_body(state, b"late chunk")  # type: ignore[arg-type]
    assert list(state._received_chunks) == [b"late chunk"]
    waiting: concurrent.futures.Future[bytes] = concurrent.futures.Future()
    state._chunk_futures.extend([cancelled, waiting])
    AIOHttpClientStreamUnified._on_body(state, b"next")  # type: ignore[arg-type]
    assert waiting.result(timeout=0) == b"next"


def test_the_end_of_stream_skips_cancelled_reads() -> None:
    cancelled: concurrent.futures.Future[bytes] = concurrent.futures.Future()
    cancelled.cancel()
    waiting: concurrent.futures.Future[bytes] = concurrent.futures.Future()
    state = stream_state(PendingReads([cancelled, waiting]))
    AIOHttpClientStreamUnified._resolve_pending_chunk_futures(state)  # type: ignore[arg-type]
    assert waiting.result(timeout=0) == b""


def test_awscrt_raises_without_it() -> None:
    """The failure this guards against, with awscrt's own queue (so the test above can fail)."""
    cancelled: concurrent.futures.Future[bytes] = concurrent.futures.Future()
    cancelled.cancel()
    state = stream_state(collections.deque([cancelled]))
    try:
        AIOHttpClientStreamUnified._on_body(state, b"late chunk")  # type: ignore[arg-type]
    except concurrent.futures.InvalidStateError:
        pass
    else:
        raise AssertionError("awscrt no longer raises here; PendingReads may be unnecessary")
