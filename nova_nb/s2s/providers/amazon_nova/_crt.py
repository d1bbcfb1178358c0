"""The SDK's CRT HTTP client, made to trust one extra CA file; and a quick TLS trust check.

The SDK's ``AWSCRTHTTPClient`` builds its TLS context from the system trust store and
``AWSCRTHTTPClientConfig`` has no CA option (docs/PROTOCOL.md §10). To reach the local emulator, whose
certificate comes from a per-run CA, :class:`TrustingCRTHTTPClient` swaps that context for one that
trusts the given CA file. The config deep-copies its transport, so ``__deepcopy__`` keeps the CA.

An untrusted certificate makes CRT fail only after 13–19 s (§10); :func:`check_tls_trust` finds out in
milliseconds with Python's ``ssl`` and says what is wrong.
"""

from __future__ import annotations

import asyncio
import copy
import socket
import ssl
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from awscrt.io import ClientTlsContext, TlsContextOptions
from smithy_http.aio.crt import AWSCRTHTTPClient, AWSCRTHTTPClientConfig

from nova_nb.errors import NovaNbError

HTTPS_DEFAULT_PORT: Final = 443
DEFAULT_TRUST_CHECK_TIMEOUT_S: Final = 3.0


class TlsTrustError(NovaNbError, ConnectionError):
    """The endpoint cannot be reached, or its certificate is not trusted by the given CA."""


class TrustingCRTHTTPClient(AWSCRTHTTPClient):
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
