"""The output order machine (nova_nb.protocol.order): event sequences in, accepted or a violation out.

The "real service" sequences follow what captures of real Nova 2 sessions and peer clients report
(userSpeech events, usage before completionStart, PARTIAL_TURN everywhere, END_TURN on a barged-in
AUDIO block, the marker as the only signal); they are written here from those descriptions, not copied.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from nova_nb.errors import NovaNbError, ProtocolError
from nova_nb.protocol import order, wire
from nova_nb.protocol.order import OutputOrder, OutputOrderError
from nova_nb.s2s import events as ev
from nova_nb.s2s.providers.amazon_nova.client import NovaClientProtocol

from ..clients import make_client

Ev = tuple[str, dict[str, Any]]
SPEC = json.dumps({"generationStage": "SPECULATIVE"})
FINAL = json.dumps({"generationStage": "FINAL"})


def e(name: str, **body: Any) -> Ev:
    return name, {"sessionId": "s", "promptName": "p", "completionId": "c", **body}


def start(cid: str, type: str, role: str, stage: str | None = None) -> Ev:
    extra = {"additionalModelFields": stage} if stage else {}
    return e("contentStart", contentId=cid, type=type, role=role, **extra)


def end(cid: str, type: str, stop: str = "END_TURN") -> Ev:
    return e("contentEnd", contentId=cid, type=type, stopReason=stop)


def text(cid: str, content: str, role: str = "ASSISTANT") -> Ev:
    return e("textOutput", contentId=cid, role=role, content=content)


def audio(cid: str) -> Ev:
    return e("audioOutput", contentId=cid, content="AAAA")


def block(cid: str, type: str, role: str, stage: str | None, body: Ev, stop: str = "END_TURN") -> list[Ev]:
    return [start(cid, type, role, stage), body, end(cid, type, stop)]


def usage() -> Ev:
    return e("usageEvent", totalInputTokens=1, totalOutputTokens=1, totalTokens=2, details={})


def violations(events: list[Ev], machine: OutputOrder | None = None) -> list[OutputOrderError]:
    machine = machine or OutputOrder()
    found = []
    for name, body in events:
        v = machine.check(name, body)
        if v is not None:
            found.append(v)
    return found


def documented_turn(n: int = 0) -> list[Ev]:
    """One turn as docs/PROTOCOL.md §4 describes it, without completionStart."""
    return [
        *block(f"u{n}", "TEXT", "USER", FINAL, text(f"u{n}", "hello", "USER")),
        *block(f"s{n}", "TEXT", "ASSISTANT", SPEC, text(f"s{n}", "Hi there."), "PARTIAL_TURN"),
        start(f"a{n}", "AUDIO", "ASSISTANT"),
        audio(f"a{n}"),
        audio(f"a{n}"),
        end(f"a{n}", "AUDIO"),
        *block(f"f{n}", "TEXT", "ASSISTANT", FINAL, text(f"f{n}", "Hi there.")),
        usage(),
    ]


# -- accepted ------------------------------------------------------------------------------------


def test_documented_turns_are_accepted() -> None:
    seq = [
        e("completionStart"),
        *documented_turn(0),
        *documented_turn(1),
        e("completionEnd", stopReason="END_TURN"),
    ]
    machine = OutputOrder(allow_unknown=False)
    assert violations(seq, machine) == []
    assert machine.state == order.COMPLETION_ENDED
    assert machine.turns == 2
    assert machine.open_blocks == {}


def test_a_tool_turn_is_accepted() -> None:
    seq = [
        e("completionStart"),
        *block("u", "TEXT", "USER", FINAL, text("u", "weather in Paris?", "USER"), "PARTIAL_TURN"),
        *block("t", "TOOL", "TOOL", None, e("toolUse", contentId="t", toolName="w", toolUseId="x", content="{}"), "TOOL_USE"),
        *block("s", "TEXT", "ASSISTANT", SPEC, text("s", "It is sunny."), "PARTIAL_TURN"),
        start("a", "AUDIO", "ASSISTANT"),
        audio("a"),
        end("a", "AUDIO"),
        e("completionEnd", stopReason="END_TURN"),
    ]  # fmt: skip
    assert violations(seq) == []


def test_real_service_turn_with_speech_events_and_early_usage_is_accepted() -> None:
    # Captured Nova 2 order: userSpeechStart → usage (system prompt tokens) → completionStart →
    # userSpeechEnd → USER text PARTIAL_TURN → SPECULATIVE/AUDIO pairs, every block PARTIAL_TURN but
    # the last AUDIO block (END_TURN), usage interleaved; FINAL texts never come when the prompt
    # closes first; completionEnd after promptEnd.
    seq = [
        ("userSpeechStart", {"inputAudioOffsetMs": 0, "promptName": "p", "sessionId": "s"}),
        usage(),
        e("completionStart"),
        ("userSpeechEnd", {"inputAudioOffsetMs": 2480, "inputAudioDetectionOffsetMs": 2760, "promptName": "p"}),
        *block("u1", "TEXT", "USER", FINAL, text("u1", "i think", "USER"), "PARTIAL_TURN"),
        *block("u2", "TEXT", "USER", FINAL, text("u2", "so", "USER"), "PARTIAL_TURN"),
        usage(),
        *block("s1", "TEXT", "ASSISTANT", SPEC, text("s1", "Great."), "PARTIAL_TURN"),
        *block("a1", "AUDIO", "ASSISTANT", None, audio("a1"), "PARTIAL_TURN"),
        usage(),
        *block("s2", "TEXT", "ASSISTANT", SPEC, text("s2", "Say it again."), "PARTIAL_TURN"),
        *block("a2", "AUDIO", "ASSISTANT", None, audio("a2"), "END_TURN"),
        usage(),
        # The second turn: no new completionStart (one per prompt).
        ("userSpeechStart", {"inputAudioOffsetMs": 9000, "promptName": "p", "sessionId": "s"}),
        *block("u3", "TEXT", "USER", FINAL, text("u3", "ok", "USER"), "PARTIAL_TURN"),
        *block("a3", "AUDIO", "ASSISTANT", None, audio("a3"), "END_TURN"),
        e("completionEnd", stopReason="END_TURN"),
        usage(),
    ]  # fmt: skip
    machine = OutputOrder(allow_unknown=False)
    assert violations(seq, machine) == []
    assert machine.turns == 2


def test_barge_in_roughness_is_accepted() -> None:
    # Pipecat: the AUDIO block of a barged-in reply ends END_TURN, then a TEXT block INTERRUPTED
    # (the blocks overlap); Strands: an INTERRUPTED may come for a block that already ended, even
    # after the response; the marker's spacing varies; its block may end INTERRUPTED or END_TURN.
    seq = [
        e("completionStart"),
        *block("u", "TEXT", "USER", FINAL, text("u", "tell me a story", "USER"), "PARTIAL_TURN"),
        start("f", "TEXT", "ASSISTANT", FINAL),
        start("a", "AUDIO", "ASSISTANT"),
        audio("a"),
        text("f", "Once upon"),
        end("a", "AUDIO", "END_TURN"),
        text("f", '{"interrupted":true}'),
        end("f", "TEXT", "INTERRUPTED"),
        end("a", "AUDIO", "INTERRUPTED"),  # late, for a closed block
        *block("u2", "TEXT", "USER", FINAL, text("u2", "stop", "USER"), "PARTIAL_TURN"),
        e("completionEnd", stopReason="END_TURN"),
        end("f", "TEXT", "INTERRUPTED"),  # even after the completion ended
    ]
    assert violations(seq) == []


def test_marker_as_the_only_signal_is_accepted() -> None:
    seq = [
        e("completionStart"),
        start("a", "AUDIO", "ASSISTANT"),
        audio("a"),
        end("a", "AUDIO", "END_TURN"),
        *block("m", "TEXT", "ASSISTANT", FINAL, text("m", '{ "interrupted" : true }'), "END_TURN"),
    ]
    assert violations(seq) == []


def test_assistant_first_and_a_completion_per_turn_are_accepted() -> None:
    # Typed input or the model speaking first: no USER block before the assistant's (AWS
    # sonic-cross-modal); the AWS page's reading of one completion per turn.
    seq = [
        e("completionStart"),
        *block("s", "TEXT", "ASSISTANT", SPEC, text("s", "Hello!"), "PARTIAL_TURN"),
        *block("a", "AUDIO", "ASSISTANT", None, audio("a")),
        e("completionEnd", stopReason="END_TURN"),
        e("completionStart"),
        *documented_turn(1),
        e("completionEnd", stopReason="END_TURN"),
    ]
    assert violations(seq) == []


def test_unknown_events_pass_in_the_client_but_not_in_the_emulator() -> None:
    seq = [e("completionStart"), e("brandNewEvent")]
    assert violations(seq) == []
    (v,) = violations(seq, OutputOrder(allow_unknown=False))
    assert v.event == "brandNewEvent" and "usageEvent" in v.expected


def test_the_emulator_builders_make_an_accepted_sequence() -> None:
    ids = {"session_id": "s", "prompt_name": "p", "completion_id": "c"}
    machine = OutputOrder(allow_unknown=False)
    for event in [
        wire.completion_start(**ids),
        wire.output_content_start(**ids, content_id="u", type="TEXT", role="USER", generation_stage="FINAL"),
        wire.text_output(**ids, content_id="u", role="USER", content="hi"),
        wire.output_content_end(**ids, content_id="u", type="TEXT", stop_reason="END_TURN"),
        wire.output_content_start(**ids, content_id="t", type="TOOL", role="TOOL"),
        wire.tool_use(**ids, content_id="t", tool_name="w", tool_use_id="x", arguments={}),
        wire.output_content_end(**ids, content_id="t", type="TOOL", stop_reason="TOOL_USE"),
        wire.output_content_start(**ids, content_id="a", type="AUDIO", role="ASSISTANT", voice_id="matthew"),
        wire.audio_output(**ids, content_id="a", pcm=b"\0\0"),
        wire.output_content_end(**ids, content_id="a", type="AUDIO", stop_reason="INTERRUPTED"),
        wire.usage_event(**ids, delta_input={}, delta_output={}, total_input={}, total_output={}),
        wire.completion_end(**ids),
    ]:
        machine.require_event(event)
    assert machine.state == order.COMPLETION_ENDED


# -- violations ----------------------------------------------------------------------------------

OPEN = [e("completionStart")]
CASES: dict[str, tuple[list[Ev], str, str]] = {
    # case: (events, the offending event's name, a phrase of the message)
    "audio before completionStart": ([audio("a")], "audioOutput", "out of order"),
    "content after completionEnd": (
        [*OPEN, e("completionEnd"), start("x", "TEXT", "ASSISTANT", FINAL)], "contentStart", "out of order"
    ),
    "second completionStart while open": ([*OPEN, e("completionStart")], "completionStart", "out of order"),
    "textOutput outside a block": ([*OPEN, text("x", "hi")], "textOutput", "of no block"),
    "audioOutput in a TEXT block": ([*OPEN, start("x", "TEXT", "ASSISTANT", SPEC), audio("x")], "audioOutput", "TEXT"),
    "toolUse in an AUDIO block": (
        [*OPEN, start("x", "AUDIO", "ASSISTANT"), e("toolUse", contentId="x")], "toolUse", "AUDIO"
    ),
    "audioOutput after its block closed": (
        [*OPEN, *block("x", "AUDIO", "ASSISTANT", None, audio("x")), audio("x")], "audioOutput", "closed block"
    ),
    "contentEnd of no block": ([*OPEN, end("x", "TEXT")], "contentEnd", "no open block"),
    "contentEnd twice": ([*OPEN, *block("x", "TEXT", "ASSISTANT", FINAL, text("x", "a")), end("x", "TEXT")], "contentEnd", "already closed"),
    "contentEnd of another type": ([*OPEN, start("x", "TEXT", "ASSISTANT", FINAL), end("x", "AUDIO")], "contentEnd", "type 'TEXT'"),
    "contentId reused": ([*OPEN, *block("x", "AUDIO", "ASSISTANT", None, audio("x")), start("x", "AUDIO", "ASSISTANT")], "contentStart", "reuses"),
    "speculative USER text": ([*OPEN, start("x", "TEXT", "USER", SPEC)], "contentStart", "SPECULATIVE USER"),
    "USER audio": ([*OPEN, start("x", "AUDIO", "USER")], "contentStart", "role 'USER'"),
    "unknown content type": ([*OPEN, start("x", "VIDEO", "ASSISTANT")], "contentStart", "type 'VIDEO'"),
    "unknown stop reason": ([*OPEN, start("x", "AUDIO", "ASSISTANT"), end("x", "AUDIO", "DONE")], "contentEnd", "'DONE'"),
    "no contentId": ([*OPEN, ("audioOutput", {"content": "AAAA"})], "audioOutput", "no contentId"),
    "completionEnd with a block open": ([*OPEN, start("x", "AUDIO", "ASSISTANT"), e("completionEnd")], "completionEnd", "still open"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_violations_name_the_event_state_and_expectation(case: str) -> None:
    events, name, phrase = CASES[case]
    found = violations(events)
    assert len(found) == 1, [str(v) for v in found]
    (v,) = found
    assert isinstance(v, ProtocolError) and isinstance(v, NovaNbError)
    assert v.event == name and v.state and v.expected
    message = str(v)
    assert message.startswith(name) and phrase in message and v.state in message and v.expected in message
    assert "docs/PROTOCOL.md §4" in message


def test_require_raises_and_check_goes_on_after_a_violation() -> None:
    machine = OutputOrder()
    with pytest.raises(
        OutputOrderError, match=r"audioOutput .* state BEFORE_COMPLETION; expected 'completionStart'"
    ):
        machine.require(*audio("a"))
    # A reused contentId is reported once; the block it opens is then used normally.
    seq = [*OPEN, *block("x", "AUDIO", "ASSISTANT", None, audio("x")), start("x", "AUDIO", "ASSISTANT"), audio("x"), end("x", "AUDIO")]  # fmt: skip
    assert [v.event for v in violations(seq)] == ["contentStart"]


# -- the client flags, and goes on ---------------------------------------------------------------


def client() -> NovaClientProtocol:
    return make_client()


def raw(event: Ev) -> bytes:
    return json.dumps({"event": {event[0]: event[1]}}).encode()


def test_client_flags_a_violation_and_still_handles_the_event() -> None:
    c = client()
    out = c.receive(raw(audio("a")), now=1.0)  # audio before completionStart and outside a block
    violation, audio_event = out
    assert isinstance(violation, ev.ProtocolViolation)
    assert violation.event == "audioOutput" and violation.state == order.BEFORE_COMPLETION
    assert "completionStart" in violation.expected and violation.timestamp == 1.0
    assert isinstance(audio_event, ev.AudioOutput) and audio_event.audio == b"\0\0\0"
    # The session goes on: a well-ordered turn afterwards gives no more violations.
    later = [
        x for event in [e("completionStart"), *documented_turn()] for x in c.receive(raw(event), now=2.0)
    ]
    assert not [x for x in later if isinstance(x, ev.ProtocolViolation)]
    assert any(isinstance(x, ev.Transcript) and x.role == "USER" for x in later)


def test_client_accepts_real_service_roughness_without_flags() -> None:
    c = client()
    seq = [
        usage(),
        e("completionStart"),
        *block("u", "TEXT", "USER", FINAL, text("u", "hi", "USER"), "PARTIAL_TURN"),
        start("a", "AUDIO", "ASSISTANT"),
        audio("a"),
        end("a", "AUDIO", "END_TURN"),
        *block("m", "TEXT", "ASSISTANT", FINAL, text("m", '{ "interrupted" : true }'), "INTERRUPTED"),
        ("userSpeechStart", {"inputAudioOffsetMs": 10, "promptName": "p", "sessionId": "s"}),
    ]
    events = [x for event in seq for x in c.receive(raw(event), now=0.0)]
    assert not [x for x in events if isinstance(x, ev.ProtocolViolation)]
    assert sum(isinstance(x, ev.Interruption) for x in events) == 1
