"""The SDK's CRT HTTP client, made to own its streams' body writers and to trust one extra CA file;
and a quick TLS trust check.

For every HTTP/2 request awscrt starts a task that copies the request body (our input events) into the
stream, and nobody awaits it. When the stream ends first (a reset, a dropped connection, or the service
closing after an error), that task either fails with ``2080 AWS_ERROR_HTTP_STREAM_HAS_COMPLETED`` or waits
for ever for the next event, and asyncio later prints "Task exception was never retrieved" or "Task was
destroyed but it is pending" with a traceback the user cannot act on. :class:`NovaCRTHTTPClient` owns
that task: when the stream completes it stops a writer that is still waiting, and it retrieves the
writer's outcome (logged at debug level), so a condition the session already handles never surfaces
as a traceback.

The SDK's ``AWSCRTHTTPClient`` builds its TLS context from the system trust store and
``AWSCRTHTTPClientConfig`` has no CA option (docs/PROTOCOL.md §10). To reach the local emulator, whose
certificate comes from a per-run CA, :class:`TrustingCRTHTTPClient` swaps that context for one that
trusts the given CA file. The config deep-copies its transport, so ``__deepcopy__`` keeps the CA.

An untrusted certificate makes CRT fail only after 13–19 s (§10); :func:`check_tls_trust` finds out in
milliseconds with Python's ``ssl`` and says what is wrong.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import copy
import logging
import socket
import ssl
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from awscrt.io import ClientTlsContext, TlsContextOptions
from smithy_http.aio.crt import AWSCRTHTTPClient, AWSCRTHTTPClientConfig, AWSCRTHTTPResponse

from nova_nb.errors import NovaNbError

HTTPS_DEFAULT_PORT: Final = 443
DEFAULT_TRUST_CHECK_TIMEOUT_S: Final = 3.0


class TlsTrustError(NovaNbError, ConnectionError):
    """The endpoint cannot be reached, or its certificate is not trusted by the given CA."""


log = logging.getLogger("nova_nb.transport")


def _retrieve_writer_outcome(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        # Expected after the stream ended before its input did; the session reports the end itself.
        log.debug("request body writer ended after its stream: %r", error)


class PendingReads(collections.deque):
    """awscrt's queue of body reads waiting for a chunk, without the reads nobody waits for any more.

    awscrt hands each waiting ``get_next_response_chunk()`` a ``concurrent.futures.Future`` and
    resolves it from its own thread when a chunk (or the end) arrives. A read whose task was
    cancelled (our session abandons a stream it no longer needs) leaves a cancelled future in the
    queue; resolving it raises ``InvalidStateError`` in awscrt's callback, printed as a traceback on
    stderr (an error box in a notebook). Every way awscrt looks at the queue (truth, ``popleft``,
    iteration) first drops cancelled futures, so a late chunk is kept for the next read instead.
    awscrt holds its lock around each of these.
    """

    def _drop_cancelled(self) -> None:
        if any(f.cancelled() for f in collections.deque.__iter__(self)):
            live = [f for f in collections.deque.__iter__(self) if not f.cancelled()]
            self.clear()
            self.extend(live)

    def __bool__(self) -> bool:
        self._drop_cancelled()
        return len(self) > 0

    def popleft(self) -> Any:
        self._drop_cancelled()
        return super().popleft()

    def __iter__(self) -> Any:
        self._drop_cancelled()
        return super().__iter__()


def own_body_reads(crt_stream: Any) -> None:
    """Give ``crt_stream`` a :class:`PendingReads` queue (awscrt's private ``_chunk_futures``).

    If a future awscrt renames the attribute this does nothing, which is how it was before.
    """
    reads = getattr(crt_stream, "_chunk_futures", None)
    if isinstance(reads, collections.deque) and not isinstance(reads, PendingReads):
        with contextlib.suppress(AttributeError, TypeError):
            crt_stream._chunk_futures = PendingReads(reads)


def own_body_writer(crt_stream: Any) -> None:
    """Retrieve the outcome of ``crt_stream``'s body-writer task, and stop it once the stream is over.

    Uses two private attributes of awscrt's ``AIOHttp2ClientStream`` (``_writer``, ``_loop``) and its
    ``_completion_future``; if a future awscrt renames them this does nothing, which is how it was before.
    """
    writer = getattr(crt_stream, "_writer", None)
    loop = getattr(crt_stream, "_loop", None)
    completion = getattr(crt_stream, "_completion_future", None)
    if not isinstance(writer, asyncio.Task) or loop is None:
        return
    writer.add_done_callback(_retrieve_writer_outcome)

    def stop_waiting_writer() -> None:
        # The stream is closed both ways: there is nothing left to write, and a writer still waiting
        # for the next input event would wait for ever. Cancelling runs its `finally`, whose end-of-
        # stream write fails (2080) and is retrieved above.
        if not writer.done():
            writer.cancel()

    def on_completion(_: concurrent.futures.Future[Any]) -> None:
        # Completed from CRT's own thread: hop to the stream's loop, unless that loop is gone (a
        # stream still open when its program ended): then there is nothing left to stop.
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed between the check and the call
                loop.call_soon_threadsafe(stop_waiting_writer)

    if isinstance(completion, concurrent.futures.Future):
        completion.add_done_callback(on_completion)


class NovaCRTHTTPClient(AWSCRTHTTPClient):
    """``AWSCRTHTTPClient`` whose streams' body writers are owned (see :func:`own_body_writer`)."""

    async def _await_response(self, stream: Any) -> AWSCRTHTTPResponse:
        own_body_writer(stream)
        own_body_reads(stream)
        return await super()._await_response(stream)


class TrustingCRTHTTPClient(NovaCRTHTTPClient):
    """``AWSCRTHTTPClient`` that trusts the certificates issued by ``ca_file`` (and only those)."""

    def __init__(
        self,
        ca_file: str | Path,
        eventloop: Any = None,
        client_config: AWSCRTHTTPClientConfig | None = None,
    ) -> None:
        super().__init__(eventloop=eventloop, client_config=client_config)
        self.ca_file = Path(ca_file)
        options = TlsContextOptions()
        options.override_default_trust_store_from_path(ca_filepath=str(self.ca_file))
        self._tls_ctx = ClientTlsContext(options)

    def __deepcopy__(self, memo: Any) -> TrustingCRTHTTPClient:
        # The base class's __deepcopy__ would return a plain AWSCRTHTTPClient and lose the CA.
        return TrustingCRTHTTPClient(
            self.ca_file, eventloop=self._eventloop, client_config=copy.deepcopy(self._config, memo)
        )


def check_tls_trust(
    endpoint_uri: str, ca_file: str | Path, timeout: float = DEFAULT_TRUST_CHECK_TIMEOUT_S
) -> None:
    """Handshake once with ``endpoint_uri`` (ALPN h2), trusting only ``ca_file``.

    Raises :class:`TlsTrustError` naming the endpoint and the CA file when the port is closed, the
    certificate does not verify, or the server does not speak HTTP/2. Blocks for at most about
    ``timeout`` seconds (run it in a thread from async code if that matters).
    """
    parts = urlsplit(endpoint_uri)
    host = parts.hostname
    if parts.scheme != "https" or not host:
        raise TlsTrustError(f"{endpoint_uri!r} is not an https:// endpoint; the SDK needs TLS with HTTP/2")
    port = parts.port or HTTPS_DEFAULT_PORT
    ca = f"CA file {str(ca_file)!r}"
    try:
        context = ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise TlsTrustError(f"cannot load {ca} to check {endpoint_uri}: {exc}") from exc
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            protocol = tls.selected_alpn_protocol()
    except ssl.SSLCertVerificationError as exc:
        raise TlsTrustError(
            f"the TLS certificate of {endpoint_uri} is not trusted by {ca}: {exc.verify_message}. "
            "Use the CA file of the server you are connecting to."
        ) from exc
    except TimeoutError as exc:
        raise TlsTrustError(f"no TLS handshake with {endpoint_uri} within {timeout:.1f} s ({ca})") from exc
    except ssl.SSLError as exc:
        raise TlsTrustError(f"TLS handshake with {endpoint_uri} failed ({ca}): {exc}") from exc
    except OSError as exc:
        raise TlsTrustError(
            f"cannot connect to {endpoint_uri} ({ca}): {exc.strerror or exc}. Is the server running?"
        ) from exc
    if protocol != "h2":
        raise TlsTrustError(
            f"{endpoint_uri} did not negotiate HTTP/2 (ALPN h2, got {protocol!r}; {ca}); the SDK's "
            "bidirectional stream needs it"
        )


async def check_tls_trust_async(
    endpoint_uri: str, ca_file: str | Path, timeout: float = DEFAULT_TRUST_CHECK_TIMEOUT_S
) -> None:
    """:func:`check_tls_trust` in a worker thread, so the calling event loop keeps running.

    Needed whenever the server may run on the caller's own loop (an in-process emulator), where the
    blocking handshake would wait for a server that cannot answer.
    """
    await asyncio.to_thread(check_tls_trust, endpoint_uri, ca_file, timeout)
