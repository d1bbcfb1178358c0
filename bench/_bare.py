"""The bare SDK: the least any client of aws-sdk-bedrock-runtime must do, as the benchmarks' baseline.

It follows NOVA_PROTOCOL.md §10 like the provider does: events are sent from one task only and never
cancelled inside ``send()``; one reader task drains ``await rx.receive()`` and is never cancelled
mid-read; every other wait is bounded with ``asyncio.wait``. Everything else the provider does
(queues, re-framing, typed events, interruption handling) is left out.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any, Final

from ._emulator import Endpoint

OPEN_TIMEOUT_S: Final = 15.0
CLOSE_TIMEOUT_S: Final = 2.0


async def make_client(endpoint: Endpoint) -> Any:
    """An SDK client built as ``transport.make_client`` builds it: CRT transport trusting the CA."""
    from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
    from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig
    from smithy_aws_core.identity import AWSCredentialsIdentity, StaticCredentialsResolver

    from nova_nb.s2s.providers.amazon_nova._crt import TrustingCRTHTTPClient

    config = await AsyncBedrockRuntimeConfig.resolve(
        region=endpoint.region,
        transport=TrustingCRTHTTPClient(endpoint.ca_file),
        endpoint_uri=endpoint.endpoint_uri,
        aws_credentials_identity_resolver=StaticCredentialsResolver(
            AWSCredentialsIdentity(
                access_key_id=endpoint.aws_access_key_id, secret_access_key=endpoint.aws_secret_access_key
            )
        ),
    )
    return AsyncBedrockRuntimeClient(config=config)


def audio_input_parts(prompt_name: str, content_name: str) -> tuple[bytes, bytes]:
    """The bytes around the base64 of an ``audioInput`` event (the JSON the provider sends)."""
    head = (
        f'{{"event":{{"audioInput":{{"promptName":"{prompt_name}","contentName":"{content_name}","content":"'
    )
    return head.encode(), b'"}}}'


def audio_input(head: bytes, tail: bytes, pcm: bytes) -> bytes:
    """One ``audioInput`` event: the encoding any client must do for each frame."""
    return b"".join((head, base64.b64encode(pcm), tail))


class BareStream:
    """One bidirectional stream. ``on_payload(event_json_bytes)`` runs in the reader for each event."""

    def __init__(self, client: Any, model_id: str, on_payload: Callable[[bytes], None]) -> None:
        self.client = client
        self.model_id = model_id
        self.on_payload = on_payload
        self.stream: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.error: BaseException | None = None
        self._chunk: Any = None
        self._part: Any = None

    async def open(self, setup: list[bytes]) -> None:
        from aws_sdk_bedrock_runtime.models import (
            BidirectionalInputPayloadPart,
            InvokeModelWithBidirectionalStreamInputChunk,
            InvokeModelWithBidirectionalStreamOperationInput,
        )

        self._chunk, self._part = InvokeModelWithBidirectionalStreamInputChunk, BidirectionalInputPayloadPart
        invoke = asyncio.ensure_future(
            self.client.invoke_model_with_bidirectional_stream(
                InvokeModelWithBidirectionalStreamOperationInput(model_id=self.model_id)
            )
        )
        done, _ = await asyncio.wait({invoke}, timeout=OPEN_TIMEOUT_S)
        if not done:
            invoke.cancel()
            raise TimeoutError("opening the stream timed out")
        self.stream = invoke.result()
        self.reader = asyncio.create_task(self._read(), name="bare-reader")
        for payload in setup:
            await self.send(payload)

    async def send(self, payload: bytes) -> None:
        """Send one event. Only ever awaited from one task, and never cancelled (§10)."""
        await self.stream.input_stream.send(self._chunk(value=self._part(bytes_=payload)))

    async def _read(self) -> None:
        try:
            _, rx = await self.stream.await_output()
            on_payload = self.on_payload
            while (chunk := await rx.receive()) is not None:
                on_payload(chunk.value.bytes_)
        except Exception as exc:
            self.error = exc

    async def close(self, closing: list[bytes]) -> None:
        """Closing events, end of input, then the reader's end: each wait bounded, nothing cancelled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_TIMEOUT_S

        async def finish() -> None:
            for payload in closing:
                await self.send(payload)
            await self.stream.input_stream.close()

        await asyncio.wait({asyncio.ensure_future(finish())}, timeout=max(deadline - loop.time(), 0))
        if self.reader is not None:
            await asyncio.wait({self.reader}, timeout=max(deadline - loop.time(), 0))
