"""The ``amazon_nova`` provider: Amazon Nova Sonic through the AWS SDK's bidirectional stream."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from ...config import Config
from ...session import StreamingS2SProvider
from ...types import ConversationContext
from . import transport
from .session import NovaSession


class AmazonNovaProvider(StreamingS2SProvider):
    """Opens Nova Sonic sessions. One SDK client per event loop is built on first use and reused.

    With ``endpoint_uri`` (and ``ca_file`` for a private CA) it talks to any Bedrock-compatible
    endpoint, such as the local emulator; the endpoint's certificate is checked before the first
    stream, because an untrusted certificate otherwise fails only after ~15 s inside the CRT.
    """

    name = "amazon_nova"

    def __init__(self, config: Config) -> None:
        self.config = config
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._tls_checked = False
        self._resolver = transport.identity_resolver(config)
        self.sessions_opened = 0

    async def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            if (
                self.config.endpoint_uri is not None
                and self.config.ca_file is not None
                and not self._tls_checked
            ):
                from ._crt import check_tls_trust_async

                await check_tls_trust_async(self.config.endpoint_uri, self.config.ca_file)
                self._tls_checked = True
            client = await transport.make_client(self.config, self._resolver)
            self._clients[loop] = client
        return client

    async def start_streaming(
        self,
        context: ConversationContext | None = None,
        *,
        voice_id: str | None = None,
        enable_streaming: bool = True,
    ) -> NovaSession:
        context, voice = self._start_arguments(self.config, context, voice_id, enable_streaming)
        session = NovaSession(
            client=await self._client(),
            credentials=self._resolver,
            config=self.config,
            context=context,
            voice_id=voice,
            enable_streaming=enable_streaming,
        )
        await session._open()
        self.sessions_opened += 1
        return session


def create(config: Config) -> AmazonNovaProvider:
    """The registry's factory for ``amazon_nova``."""
    return AmazonNovaProvider(config)
