"""The client-role state machine and the server-role validator, with JSON in and events out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nova_nb.errors import ConfigError, ProtocolError, SessionClosedError
from nova_nb.protocol import catalog, wire
from nova_nb.protocol.rules import (
    MSG_HISTORY_BEFORE_AUDIO,
    MSG_TOOL_RESPONSE,
    InputValidator,
    ServiceException,
)
from nova_nb.s2s import events as ev
from nova_nb.s2s.providers.amazon_nova.client import NovaClientProtocol
from nova_nb.s2s.types import HistoryMessage

from ..clients import make_client

NOVA2 = catalog.NOVA_2_SONIC


def feed(validator: InputValidator, events: list[Any]) -> list[str]:
    names = []
    for e in events:
        raw = e if isinstance(e, bytes) else wire.encode(e)
        names.append(validator.receive(raw).name)
    return names


def test_setup_sequence_order_and_history() -> None:
    client = make_client()
    history = [HistoryMessage("USER", "What is 2+2?"), HistoryMessage("ASSISTANT", "Four.")]
    events = client.setup_events("You are terse.", history)
    names = [next(iter(e["event"])) for e in events]
    assert names == [
        "sessionStart", "promptStart",
        "contentStart", "textInput", "contentEnd",  # system
        "contentStart", "textInput", "contentEnd",  # USER history
        "contentStart", "textInput", "contentEnd",  # ASSISTANT history
        "contentStart",  # the audio block stays open
    ]  # fmt: skip
    # Every event after sessionStart repeats the client's promptName (§2).
    for e in events[1:]:
        assert next(iter(e["event"].values()))["promptName"] == client.prompt_name
    validator = InputValidator(NOVA2)
    feed(validator, events)
    assert validator.settings.system_prompt == "You are terse."
    assert validator.settings.history == [("USER", "What is 2+2?"), ("ASSISTANT", "Four.")]
    assert validator.settings.endpointing_sensitivity == "MEDIUM"


def test_nova1_session_start_has_no_turn_detection_and_validator_accepts_it() -> None:
    client = make_client(catalog.NOVA_SONIC_V1, endpointing_sensitivity="HIGH")
    events = client.setup_events("hi")
    assert "turnDetectionConfiguration" not in events[0]["event"]["sessionStart"]
    feed(InputValidator(catalog.NOVA_SONIC_V1), events)


def test_long_history_message_is_split_into_1kb_text_inputs() -> None:
    client = make_client()
    long_text = "word " * 700  # 3.5 KB
    events = client.setup_events("sys", [HistoryMessage("USER", long_text)])
    inputs = [e for e in events if "textInput" in e["event"]][1:]  # skip the system prompt
    assert len(inputs) == 4
    assert "".join(e["event"]["textInput"]["content"] for e in inputs) == long_text
    feed(InputValidator(NOVA2), events)


def test_history_rules_are_checked_before_sending() -> None:
    with pytest.raises(ConfigError, match="first history message must have role 'USER'"):
        make_client().setup_events("sys", [HistoryMessage("ASSISTANT", "hello")])
    too_big = [HistoryMessage("USER", "x" * 1000) for _ in range(42)]
    with pytest.raises(ConfigError, match="40 KB"):
        make_client().setup_events("sys", too_big)


def test_full_session_passes_the_validator() -> None:
    client = make_client()
    validator = InputValidator(NOVA2)
    feed(validator, client.setup_events("sys"))
    feed(validator, [client.audio_event(b"\x00\x01" * 256)])
    feed(validator, client.text_events("typed question"))
    feed(validator, [client.audio_event(b"\x00\x00" * 256)])
    feed(validator, client.tool_result_events("tool-1", {"ok": True}))
    assert feed(validator, client.closing_events()) == ["contentEnd", "promptEnd", "sessionEnd"]
    assert client.closing_events() == []  # idempotent
    with pytest.raises(SessionClosedError):
        client.audio_event(b"\x00\x00")


def test_client_refuses_out_of_order_and_unsupported_input() -> None:
    client = make_client()
    with pytest.raises(ProtocolError, match="setup"):
        client.audio_event(b"\x00\x00")
    client.setup_events("sys")
    with pytest.raises(ProtocolError, match="already sent"):
        client.setup_events("sys")
    with pytest.raises(ConfigError, match="non-empty"):
        client.text_events("  ")
    nova1 = make_client(catalog.NOVA_SONIC_V1)
    nova1.setup_events("sys")
    with pytest.raises(ConfigError, match="Nova 2"):
        nova1.text_events("hello")


# -- validator: the service's answers ------------------------------------------------------------


def setup_validator(model_id: str = NOVA2) -> tuple[NovaClientProtocol, InputValidator]:
    client = make_client(model_id)
    validator = InputValidator(model_id)
    feed(validator, client.setup_events("sys"))
    return client, validator


def expect_rejection(validator: InputValidator, event: Any, match: str) -> ServiceException:
    raw = event if isinstance(event, bytes) else wire.encode(event)
    with pytest.raises(ServiceException, match=match) as info:
        validator.receive(raw)
    assert info.value.exception_type == "validationException"
    return info.value


def test_validator_requires_session_start_first() -> None:
    expect_rejection(
        InputValidator(NOVA2),
        wire.prompt_start(prompt_name="p", voice_id="matthew", output_sample_rate=24000),
        "promptStart must follow sessionStart",
    )


def test_validator_rejects_audio_inside_open_text_block_with_service_message() -> None:
    client, validator = setup_validator()
    feed(
        validator,
        [
            wire.text_content_start(
                prompt_name=client.prompt_name, content_name="t1", role="USER", interactive=True
            )
        ],
    )
    expect_rejection(validator, client.audio_event(b"\x00\x00"), MSG_HISTORY_BEFORE_AUDIO)


def test_validator_rejects_history_after_audio_started() -> None:
    client, validator = setup_validator()
    event = wire.text_content_start(
        prompt_name=client.prompt_name, content_name="h1", role="USER", interactive=False
    )
    expect_rejection(validator, event, MSG_HISTORY_BEFORE_AUDIO)


def test_validator_rejects_first_history_assistant_and_big_text_input() -> None:
    client = make_client()
    validator = InputValidator(NOVA2)
    events = client.setup_events("sys")[:-1]  # stop before the audio block
    feed(validator, events)
    p = client.prompt_name
    expect_rejection(
        validator,
        wire.text_content_start(prompt_name=p, content_name="h1", role="ASSISTANT", interactive=False),
        "first chat history message must have role USER",
    )
    feed(
        validator, [wire.text_content_start(prompt_name=p, content_name="h2", role="USER", interactive=False)]
    )
    expect_rejection(
        validator, wire.text_input(prompt_name=p, content_name="h2", content="x" * 1025), "1024 bytes"
    )


def test_validator_rejects_wrong_prompt_name_unknown_content_and_bad_voice() -> None:
    client, validator = setup_validator()
    expect_rejection(
        validator,
        wire.audio_input(prompt_name="other", content_name=client.audio_content_name, pcm=b"\0\0"),
        "does not match the active prompt",
    )
    expect_rejection(
        validator,
        wire.audio_input(prompt_name=client.prompt_name, content_name="nope", pcm=b"\0\0"),
        "No open content found for content name",
    )
    v = InputValidator(NOVA2)
    feed(v, [wire.session_start(max_tokens=10, top_p=0.5, temperature=0.5)])
    expect_rejection(
        v,
        wire.prompt_start(prompt_name="p", voice_id="brian", output_sample_rate=24000),
        "voiceId 'brian' is not supported",
    )
    v = InputValidator(NOVA2)
    feed(v, [wire.session_start(max_tokens=10, top_p=0.5, temperature=0.5)])
    expect_rejection(
        v,
        wire.prompt_start(prompt_name="p", voice_id="matthew", output_sample_rate=44100),
        "sampleRateHertz 44100",
    )


def test_validator_rejects_turn_detection_on_nova1_and_tina_on_nova1() -> None:
    v = InputValidator(catalog.NOVA_SONIC_V1)
    expect_rejection(
        v,
        wire.session_start(max_tokens=10, top_p=0.5, temperature=0.5, endpointing_sensitivity="HIGH"),
        "not supported",
    )
    v = InputValidator(catalog.NOVA_SONIC_V1)
    feed(v, [wire.session_start(max_tokens=10, top_p=0.5, temperature=0.5)])
    expect_rejection(
        v, wire.prompt_start(prompt_name="p", voice_id="tina", output_sample_rate=24000), "voiceId 'tina'"
    )


def test_validator_rejects_plain_string_tool_result() -> None:
    client, validator = setup_validator()
    p = client.prompt_name
    feed(validator, [wire.tool_content_start(prompt_name=p, content_name="t", tool_use_id="u")])
    expect_rejection(
        validator, wire.tool_result(prompt_name=p, content_name="t", content="sunny"), MSG_TOOL_RESPONSE
    )


def test_validator_rejects_garbage_and_unknown_events() -> None:
    expect_rejection(InputValidator(NOVA2), b"{not json", "Invalid input request")
    expect_rejection(InputValidator(NOVA2), b'{"event": {"bogus": {}}}', "unknown event 'bogus'")


# -- receiving: output events → typed events -------------------------------------------------------


def out(name: str, **body: Any) -> bytes:
    return json.dumps(
        {"event": {name: {"sessionId": "s", "promptName": "p", "completionId": "c", **body}}}
    ).encode()


def turn_events(interrupt: str | None = None) -> list[bytes]:
    """A turn as the docs describe it; optionally interrupted with one or both signals."""
    seq = [
        out("completionStart"),
        out("contentStart", contentId="u", type="TEXT", role="USER", additionalModelFields='{"generationStage":"FINAL"}'),
        out("textOutput", contentId="u", role="USER", content="hello there"),
        out("contentEnd", contentId="u", type="TEXT", stopReason="END_TURN"),
        out("contentStart", contentId="s", type="TEXT", role="ASSISTANT", additionalModelFields='{"generationStage":"SPECULATIVE"}'),
        out("textOutput", contentId="s", role="ASSISTANT", content="Hi! How can I help?"),
        out("contentEnd", contentId="s", type="TEXT", stopReason="PARTIAL_TURN"),
        out("contentStart", contentId="a", type="AUDIO", role="ASSISTANT"),
        out("audioOutput", contentId="a", content="AAAAAA=="),
    ]  # fmt: skip
    if interrupt is None:
        seq += [
            out("contentEnd", contentId="a", type="AUDIO", stopReason="END_TURN"),
            out("contentStart", contentId="f", type="TEXT", role="ASSISTANT", additionalModelFields='{"generationStage":"FINAL"}'),
            out("textOutput", contentId="f", role="ASSISTANT", content="Hi! How can I help?"),
            out("contentEnd", contentId="f", type="TEXT", stopReason="END_TURN"),
        ]  # fmt: skip
    else:
        if interrupt in ("stopReason", "both"):
            seq.append(out("contentEnd", contentId="a", type="AUDIO", stopReason="INTERRUPTED"))
        seq.append(
            out(
                "contentStart",
                contentId="f",
                type="TEXT",
                role="ASSISTANT",
                additionalModelFields='{"generationStage":"FINAL"}',
            )
        )
        if interrupt in ("marker", "both"):
            seq.append(out("textOutput", contentId="f", role="ASSISTANT", content='{ "interrupted" : true }'))
        seq.append(
            out(
                "contentEnd",
                contentId="f",
                type="TEXT",
                stopReason="INTERRUPTED" if interrupt != "marker" else "END_TURN",
            )
        )
    seq.append(out("usageEvent", totalInputTokens=5, totalOutputTokens=7, totalTokens=12, details={}))
    return seq


def receive_all(raws: list[bytes]) -> list[ev.Event]:
    client = make_client()
    events: list[ev.Event] = []
    for i, raw in enumerate(raws):
        events += client.receive(raw, now=float(i))
    return events


def test_receive_a_turn() -> None:
    events = receive_all(turn_events())
    transcripts = [(e.role, e.stage, e.text) for e in events if isinstance(e, ev.Transcript)]
    assert transcripts == [
        ("USER", "FINAL", "hello there"),
        ("ASSISTANT", "SPECULATIVE", "Hi! How can I help?"),
        ("ASSISTANT", "FINAL", "Hi! How can I help?"),
    ]
    audio = [e for e in events if isinstance(e, ev.AudioOutput)]
    assert audio[0].audio == b"\x00" * 4 and audio[0].content_id == "a"
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    assert isinstance(events[-1], ev.Usage) and events[-1].total_tokens == 12
    assert not any(isinstance(e, ev.Interruption) for e in events)


@pytest.mark.parametrize("signal", ["stopReason", "marker", "both"])
def test_barge_in_either_signal_gives_one_interruption_and_no_marker_text(signal: str) -> None:
    events = receive_all(turn_events(interrupt=signal))
    interruptions = [e for e in events if isinstance(e, ev.Interruption)]
    assert len(interruptions) == 1
    assert interruptions[0].content_id == "a"
    assert interruptions[0].signal == ("marker" if signal == "marker" else "stopReason")
    assert not any(isinstance(e, ev.Transcript) and "interrupted" in e.text for e in events)


def test_double_encoded_tool_use_and_unknown_events() -> None:
    args = {"city": "Paris"}
    events = receive_all(
        [
            out("completionStart"),
            out("contentStart", contentId="t", type="TOOL", role="TOOL"),
            out(
                "toolUse",
                contentId="t",
                toolName="getWeather",
                toolUseId="tu-9",
                content=json.dumps(json.dumps(args)),
            ),
            out("brandNewEvent", something=1),
        ]
    )
    _, tool, unknown = events  # CompletionStarted, ToolUse, UnknownEvent: no ProtocolViolation
    assert isinstance(tool, ev.ToolUse) and tool.arguments == args and tool.tool_use_id == "tu-9"
    assert isinstance(unknown, ev.UnknownEvent) and unknown.name == "brandNewEvent"


def test_validator_answers_with_the_messages_seen_from_the_service() -> None:
    """Messages quoted from real sessions (docs/PROTOCOL.md §12), so a client's error handling can be
    tested against the words the service actually uses."""
    start = wire.encode(wire.session_start(max_tokens=1024, top_p=0.9, temperature=0.7))

    empty_voice = wire.prompt_start(prompt_name="p", voice_id="", output_sample_rate=24000)
    v = InputValidator(NOVA2)
    v.receive(start)
    expect_rejection(v, empty_voice, "^Received invalid voiceId: value must not be empty$")

    tool = wire.ToolSpec("getWeather", "The weather", {"type": "object", "properties": {}})
    with_tool = wire.prompt_start(prompt_name="p", voice_id="matthew", output_sample_rate=24000, tools=[tool])
    spec = with_tool["event"]["promptStart"]["toolConfiguration"]["tools"][0]["toolSpec"]
    spec["inputSchema"]["json"] = {"type": "object"}  # an object where the service wants a JSON string
    v = InputValidator(NOVA2)
    v.receive(start)
    expect_rejection(v, with_tool, "^Unable to parse input chunk")
