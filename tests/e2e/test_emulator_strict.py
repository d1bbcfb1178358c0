"""The emulator as an independent client sees it: the bare AWS SDK, events written by hand from the
AWS documentation (not built by nova_nb's protocol code), wrong orders and limits → the service's
exception types and messages, delivered as in-stream exceptions raised by ``receive()``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig
from aws_sdk_bedrock_runtime.models import (
    BidirectionalInputPayloadPart,
    InvokeModelWithBidirectionalStreamInputChunk,
    InvokeModelWithBidirectionalStreamOperationInput,
)
from smithy_aws_core.identity import AWSCredentialsIdentity
from smithy_aws_core.identity.static import StaticCredentialsResolver

from nova_nb import s2s
from nova_nb.emulator import BackgroundEmulator, HttpError
from nova_nb.emulator.conversation import (
    BEHAVIOURS,
    ConversationOptions,
    Faults,
    admission_for,
    conversation_handler,
)
from nova_nb.s2s.providers.amazon_nova._crt import TrustingCRTHTTPClient

NOVA2 = "amazon.nova-2-sonic-v1:0"
NOVA1 = "amazon.nova-sonic-v1:0"
P = "my-prompt"


@pytest.fixture(scope="module")
def emulator() -> AsyncIterator[BackgroundEmulator]:
    options = ConversationOptions(faults=Faults(input_timeout_s=1.5))
    em = BackgroundEmulator(handler=conversation_handler(options)).start()
    yield em  # type: ignore[misc]
    em.stop()


async def client_for(em: BackgroundEmulator) -> AsyncBedrockRuntimeClient:
    config = await AsyncBedrockRuntimeConfig.resolve(
        region=em.region,
        endpoint_uri=em.endpoint_uri,
        transport=TrustingCRTHTTPClient(em.ca_file),
        aws_credentials_identity_resolver=StaticCredentialsResolver(
            AWSCredentialsIdentity(
                access_key_id=em.credentials.access_key_id, secret_access_key=em.credentials.secret_access_key
            )
        ),
    )
    return AsyncBedrockRuntimeClient(config=config)


def e(name: str, **body: Any) -> dict[str, Any]:
    return {"event": {name: body}}


SESSION_START = e("sessionStart", inferenceConfiguration={"maxTokens": 1024, "topP": 0.9, "temperature": 0.7})
PROMPT_START = e(
    "promptStart",
    promptName=P,
    textOutputConfiguration={"mediaType": "text/plain"},
    audioOutputConfiguration={
        "mediaType": "audio/lpcm", "sampleRateHertz": 24000, "sampleSizeBits": 16, "channelCount": 1,
        "voiceId": "matthew", "encoding": "base64", "audioType": "SPEECH",
    },
)  # fmt: skip


def text_block(name: str, role: str, text: str, interactive: bool = False) -> list[dict[str, Any]]:
    return [
        e("contentStart", promptName=P, contentName=name, type="TEXT", interactive=interactive, role=role,
          textInputConfiguration={"mediaType": "text/plain"}),
        e("textInput", promptName=P, contentName=name, content=text),
        e("contentEnd", promptName=P, contentName=name),
    ]  # fmt: skip


AUDIO_START = e(
    "contentStart", promptName=P, contentName="audio-1", type="AUDIO", interactive=True, role="USER",
    audioInputConfiguration={"mediaType": "audio/lpcm", "sampleRateHertz": 16000, "sampleSizeBits": 16,
                             "channelCount": 1, "audioType": "SPEECH", "encoding": "base64"},
)  # fmt: skip
AUDIO = e("audioInput", promptName=P, contentName="audio-1", content=base64.b64encode(b"\0\0" * 512).decode())
SETUP = [SESSION_START, PROMPT_START, *text_block("sys", "SYSTEM", "Be brief."), AUDIO_START]


async def run(
    em: BackgroundEmulator, events: list[dict[str, Any]], model_id: str = NOVA2
) -> BaseException | None:
    """Send ``events`` with the bare SDK (one sender, one reader) and return what receive() raised."""
    client = await client_for(em)
    stream = await client.invoke_model_with_bidirectional_stream(
        InvokeModelWithBidirectionalStreamOperationInput(model_id=model_id)
    )

    async def send() -> None:
        for event in events:
            chunk = BidirectionalInputPayloadPart(bytes_=json.dumps(event).encode())
            await stream.input_stream.send(InvokeModelWithBidirectionalStreamInputChunk(value=chunk))

    async def read() -> BaseException | None:
        _, receiver = await stream.await_output()
        try:
            while await receiver.receive() is not None:
                pass
        except Exception as exc:
            return exc
        return None

    sender = asyncio.create_task(send())
    reader = asyncio.create_task(read())
    done, _ = await asyncio.wait({reader}, timeout=10)
    assert done, "the emulator neither answered nor ended the stream"
    await asyncio.wait({sender}, timeout=1)
    return reader.result()


CASES = [
    ("audio before sessionStart", [AUDIO], "ValidationException", "promptStart|before|sessionStart|prompt"),
    ("promptStart twice", [SESSION_START, PROMPT_START, PROMPT_START], "ValidationException", "promptStart"),
    (
        "wrong promptName",
        [*SETUP, {**AUDIO, "event": {"audioInput": {**AUDIO["event"]["audioInput"], "promptName": "other"}}}],
        "ValidationException",
        "does not match",
    ),
    (
        "audio inside an open text block",
        [*SETUP[:-1], AUDIO_START, text_block("t", "USER", "hi", True)[0], AUDIO],
        "ValidationException",
        "Chat history should be sent completely before streaming audio",
    ),
    (
        "history after audio started",
        [*SETUP, *text_block("h", "USER", "late history")],
        "ValidationException",
        "Chat history should be sent completely before streaming audio",
    ),
    (
        "first history message ASSISTANT",
        [
            SESSION_START,
            PROMPT_START,
            *text_block("sys", "SYSTEM", "x"),
            *text_block("h", "ASSISTANT", "hello"),
        ],
        "ValidationException",
        "first chat history message must have role USER",
    ),
    (
        "textInput over 1 KB",
        [SESSION_START, PROMPT_START, *text_block("sys", "SYSTEM", "x" * 1025)],
        "ValidationException",
        "1024 bytes",
    ),
    (
        "history over 40 KB",
        [
            SESSION_START,
            PROMPT_START,
            *text_block("sys", "SYSTEM", "x"),
            *[
                ev
                for i in range(42)
                for ev in text_block(f"h{i}", "USER" if i % 2 == 0 else "ASSISTANT", "y" * 1000)
            ],
        ],
        "ValidationException",
        "Chat history is over max limit. Trim chat history and try again.",
    ),
    (
        "Polly voice",
        [
            SESSION_START,
            e(
                "promptStart",
                **{
                    **PROMPT_START["event"]["promptStart"],
                    "audioOutputConfiguration": {
                        **PROMPT_START["event"]["promptStart"]["audioOutputConfiguration"],
                        "voiceId": "Brian",
                    },
                },
            ),
        ],
        "ValidationException",
        "voiceId 'Brian'",
    ),
    (
        "44.1 kHz input",
        [
            *SETUP[:-1],
            e(
                "contentStart",
                **{
                    **AUDIO_START["event"]["contentStart"],
                    "audioInputConfiguration": {
                        **AUDIO_START["event"]["contentStart"]["audioInputConfiguration"],
                        "sampleRateHertz": 44100,
                    },
                },
            ),
        ],
        "ValidationException",
        "44100",
    ),
    (
        "tool result not JSON",
        [
            *SETUP,
            e(
                "contentStart",
                promptName=P,
                contentName="t",
                interactive=False,
                type="TOOL",
                role="TOOL",
                toolResultInputConfiguration={
                    "toolUseId": "u",
                    "type": "TEXT",
                    "textInputConfiguration": {"mediaType": "text/plain"},
                },
            ),
            e("toolResult", promptName=P, contentName="t", content="sunny"),
        ],
        "ValidationException",
        "Tool Response parsing error",
    ),
    ("no input for too long", SETUP, "ValidationException", "Timed out waiting for input events"),
]


@pytest.mark.parametrize(("case", "events", "error", "message"), CASES, ids=[c[0] for c in CASES])
async def test_service_errors_for_bad_input(
    emulator: BackgroundEmulator, case: str, events: list[dict[str, Any]], error: str, message: str
) -> None:
    exc = await run(emulator, events)
    assert exc is not None, f"{case}: the stream ended without an error"
    assert type(exc).__name__ == error
    import re

    assert re.search(message, str(getattr(exc, "message", exc))), str(exc)


async def test_nova1_rejects_turn_detection(emulator: BackgroundEmulator) -> None:
    start = e(
        "sessionStart",
        inferenceConfiguration={"maxTokens": 10},
        turnDetectionConfiguration={"endpointingSensitivity": "HIGH"},
    )
    exc = await run(emulator, [start], model_id=NOVA1)
    assert type(exc).__name__ == "ValidationException" and "not supported" in str(
        getattr(exc, "message", exc)
    )


async def test_a_correct_session_ends_cleanly(emulator: BackgroundEmulator) -> None:
    closing = [
        e("contentEnd", promptName=P, contentName="audio-1"),
        e("promptEnd", promptName=P),
        e("sessionEnd"),
    ]
    assert await run(emulator, [*SETUP, *[AUDIO] * 20, *closing]) is None


@pytest.mark.parametrize(
    ("status", "error_type"), [(429, "ThrottlingException"), (403, "AccessDeniedException")]
)
async def test_http_faults_at_open_through_local_provider(status: int, error_type: str) -> None:
    options = ConversationOptions(faults=Faults(http_error_at_open=HttpError(status, error_type, "injected")))
    assert admission_for(options) is not None
    provider = s2s.new_provider("local", engine=options)
    with pytest.raises(s2s.StreamError) as info:
        await provider.start_streaming()  # type: ignore[attr-defined]
    assert info.value.code.lower() == error_type.lower() and "injected" in str(info.value)


async def test_slow_first_audio_fault() -> None:
    from .conftest import speak_and_wait

    provider = s2s.new_provider(
        "local", engine=ConversationOptions(faults=Faults(first_audio_delay_s=0.6)), latency_target="low"
    )
    async with await provider.start_streaming() as session:  # type: ignore[attr-defined]
        events: list[s2s.events.Event] = []
        session.add_listener(events.append)
        await speak_and_wait(session, 0.6)
    decided = next(x for x in events if isinstance(x, s2s.events.Transcript) and x.role == "USER")
    first_audio = next(x for x in events if isinstance(x, s2s.events.AudioOutput))
    assert first_audio.timestamp - decided.timestamp >= 0.6


# -- each service behaviour, as a client written apart from nova_nb sees it ----------------------------


def _tone_b64(n: int, i0: int) -> str:
    import numpy as np

    t = (np.arange(n) + i0) / 16000
    return base64.b64encode((0.3 * 32767 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()).decode()


SILENT = AUDIO["event"]["audioInput"]["content"]  # 512 samples, 32 ms


def _audio(content: str) -> dict[str, Any]:
    return e("audioInput", promptName=P, contentName="audio-1", content=content)


async def run_behaviour(em: BackgroundEmulator, *, barge_in: bool) -> list[tuple[str, dict[str, Any]]]:
    """Setup, 1 s of tone, then silence (16× real time) until the reply is over; with ``barge_in``, a
    0.6 s tone as soon as the reply's first audio arrives. Returns every output event received."""
    client = await client_for(em)
    stream = await client.invoke_model_with_bidirectional_stream(
        InvokeModelWithBidirectionalStreamOperationInput(model_id=NOVA2)
    )
    got: list[tuple[str, dict[str, Any]]] = []

    async def send(event: dict[str, Any]) -> None:
        chunk = BidirectionalInputPayloadPart(bytes_=json.dumps(event).encode())
        await stream.input_stream.send(InvokeModelWithBidirectionalStreamInputChunk(value=chunk))

    def over() -> bool:
        names = [n for n, _ in got]
        if barge_in:
            return any(
                b.get("stopReason") == "INTERRUPTED" or '"interrupted"' in str(b.get("content"))
                for _, b in got
            )
        return "audioOutput" in names and names.count("textOutput") >= 5  # USER, 2 SPECULATIVE, 2 FINAL

    async def read() -> None:
        _, receiver = await stream.await_output()
        while (out := await receiver.receive()) is not None:
            raw = json.loads(out.value.bytes_)  # type: ignore[union-attr]
            ((name, body),) = raw["event"].items()
            got.append((name, body))

    reader = asyncio.create_task(read())
    for event in SETUP:
        await send(event)
    for _ in range(10):
        await send(_audio(SILENT))
    for i in range(32):  # ~1 s of tone
        await send(_audio(_tone_b64(512, 512 * i)))
        await asyncio.sleep(0.002)
    barged = False
    for _ in range(2000):
        if over():
            break
        if barge_in and not barged and any(n == "audioOutput" for n, _ in got):
            barged = True
            for i in range(19):
                await send(_audio(_tone_b64(512, 512 * i)))
        await send(_audio(SILENT))
        await asyncio.sleep(0.002)
    for event in (
        e("contentEnd", promptName=P, contentName="audio-1"),
        e("promptEnd", promptName=P),
        e("sessionEnd"),
    ):
        await send(event)
    await stream.input_stream.close()
    await asyncio.wait_for(reader, 10)
    return got


def _summary(got: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Event names, content blocks as ROLE TYPE STAGE and ends as TYPE STOP; usage and audio left out."""
    out: list[str] = []
    for name, body in got:
        if name in ("usageEvent", "audioOutput"):
            continue
        if name == "contentStart":
            stage = json.loads(body.get("additionalModelFields", "{}")).get("generationStage", "")
            out.append(f"{body['role']} {body['type']} {stage}".strip())
        elif name == "contentEnd":
            out.append(f"end {body['type']} {body['stopReason']}")
        elif name == "textOutput":
            out.append("marker" if '"interrupted"' in body["content"] else "text")
        else:
            out.append(name)
    return out


PLAYED = [
    "userSpeechStart", "completionStart", "userSpeechEnd",
    "USER TEXT FINAL", "text", "end TEXT PARTIAL_TURN",
    "ASSISTANT TEXT SPECULATIVE", "text", "end TEXT PARTIAL_TURN", "ASSISTANT AUDIO", "end AUDIO PARTIAL_TURN",
    "ASSISTANT TEXT SPECULATIVE", "text", "end TEXT PARTIAL_TURN", "ASSISTANT AUDIO", "end AUDIO END_TURN",
    "ASSISTANT TEXT FINAL", "text", "end TEXT PARTIAL_TURN", "ASSISTANT TEXT FINAL", "text", "end TEXT PARTIAL_TURN",
    "completionEnd",
]  # fmt: skip
#: What each barge-in form sends once the user talks over the first sentence's audio (§5, §13.7).
BARGE_IN_TAIL = {
    "service": ["end AUDIO INTERRUPTED", "ASSISTANT TEXT FINAL", "marker", "end TEXT INTERRUPTED"],
    "audio-end-turn": ["end AUDIO END_TURN", "ASSISTANT TEXT FINAL", "end TEXT INTERRUPTED"],
    "marker-only": ["end AUDIO END_TURN", "ASSISTANT TEXT FINAL", "marker", "end TEXT PARTIAL_TURN"],
    "late-interrupted": ["end AUDIO END_TURN", "ASSISTANT TEXT FINAL", "end TEXT PARTIAL_TURN", "end AUDIO INTERRUPTED"],
}  # fmt: skip


@pytest.mark.parametrize("behaviour", sorted(BEHAVIOURS))
async def test_each_behaviour_as_a_raw_sdk_client_sees_it(behaviour: str) -> None:
    b = BEHAVIOURS[behaviour]
    options = ConversationOptions(behaviour=b, faults=Faults(input_timeout_s=5))
    em = BackgroundEmulator(handler=conversation_handler(options)).start()
    try:
        played = _summary(await run_behaviour(em, barge_in=False))
        barged = await run_behaviour(em, barge_in=True)
    finally:
        em.stop()
    interrupted = _summary(barged)
    if b.sentence_blocks:
        expected = PLAYED if b.speech_events else [x for x in PLAYED if not x.startswith("userSpeech")]
        assert played == expected
        # Up to the first sentence's audio, then the barge-in form; the barge-in's own speech starts.
        speech = ["userSpeechStart"] if b.speech_events else []
        # (The words heard before the barge-in, if any, are left out: they depend on timing.)
        after = interrupted[interrupted.index("ASSISTANT AUDIO") + 1 :]
        tail = [x for x in after if x not in ("userSpeechStart", "text")]
        form = BARGE_IN_TAIL.get(behaviour, BARGE_IN_TAIL["service"])
        assert tail[: len(form)] == form, interrupted
        assert interrupted.count("userSpeechStart") == len(speech) * 2
    else:  # gentle: the documented sequence, one block of each per reply, END_TURN
        assert played == [
            "completionStart", "USER TEXT FINAL", "text", "end TEXT END_TURN",
            "ASSISTANT TEXT SPECULATIVE", "text", "end TEXT PARTIAL_TURN", "ASSISTANT AUDIO", "end AUDIO END_TURN",
            "ASSISTANT TEXT FINAL", "text", "end TEXT END_TURN", "completionEnd",
        ]  # fmt: skip
        assert "end AUDIO INTERRUPTED" in interrupted and "marker" in interrupted
    audio_start = next(body for name, body in barged if name == "contentStart" and body["type"] == "AUDIO")
    assert ("voiceId" in audio_start["audioOutputConfiguration"]) == b.voice_id_in_audio_start


async def test_the_response_opens_only_after_the_setup(emulator: BackgroundEmulator) -> None:
    """As the service does (docs/PROTOCOL.md §12): a client that awaits the response before sending
    sessionStart and promptStart waits; once they are sent, the response opens."""
    client = await client_for(emulator)
    stream = await client.invoke_model_with_bidirectional_stream(
        InvokeModelWithBidirectionalStreamOperationInput(model_id=NOVA2)
    )
    output = asyncio.ensure_future(stream.await_output())
    done, _ = await asyncio.wait({output}, timeout=1.0)
    assert not done, "the response opened before any setup event was sent"
    for event in (SESSION_START, PROMPT_START):
        chunk = BidirectionalInputPayloadPart(bytes_=json.dumps(event).encode())
        await stream.input_stream.send(InvokeModelWithBidirectionalStreamInputChunk(value=chunk))
    done, _ = await asyncio.wait({output}, timeout=10.0)
    assert done and output.exception() is None
    await stream.input_stream.close()
