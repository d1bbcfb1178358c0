"""Tools, typed text and history against the emulator, through the real SDK (notebook 08's ground).

The rule that answers "what did I say earlier?" from the replayed history, text sent right after the
setup ("the model speaks first"), a tool answered by hand with ``send_tool_result``, and the history
limit, each seen the way a client sees it.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from nova_nb import s2s
from nova_nb.emulator.responder import ReplyContext, recall_reply, rule_based_reply
from nova_nb.protocol import catalog
from nova_nb.s2s import events as ev

RATE = 16000
HISTORY = (
    ("USER", "I am planning a night walk on Friday."),
    ("ASSISTANT", "Lovely. Take a torch and dress warmly."),
    ("USER", "My name is Sam, by the way."),
    ("ASSISTANT", "Nice to meet you, Sam."),
)


# -- the recall rule, on its own --------------------------------------------------------------------


@pytest.mark.parametrize(
    "question",
    [
        "What did I say earlier?",
        "do you remember my name",
        "What was I talking about?",
        "What was the last thing I told you?",
        "Remind me what I asked.",
    ],
)
def test_recall_quotes_the_last_user_message_of_the_history(question: str) -> None:
    reply = rule_based_reply(question, ReplyContext(history=HISTORY))
    assert reply == "Earlier you said: My name is Sam, by the way."


def test_recall_without_history_says_so_and_other_rules_are_untouched() -> None:
    assert (
        rule_based_reply("What did I say earlier?") == "I was given no earlier messages in this conversation."
    )
    assert rule_based_reply("What did I say earlier?", ReplyContext()) == recall_reply(None)
    # Only USER messages are quoted; an ASSISTANT-only tail is skipped.
    only_assistant_last = ReplyContext(history=(("USER", "Blue skies."), ("ASSISTANT", "Indeed.")))
    assert recall_reply(only_assistant_last) == "Earlier you said: Blue skies."
    # Questions about anything else keep their rules.
    assert rule_based_reply("hello there", ReplyContext(history=HISTORY)).startswith("Hello!")
    assert rule_based_reply("I like tea.", ReplyContext(history=HISTORY)) == "You said: I like tea."


# -- end to end: the real SDK against the emulator ----------------------------------------------------


async def _reply_to_text(
    session: s2s.S2SSession, text: str | None, events: list[ev.Event], timeout_s: float = 20.0
) -> list[s2s.AudioOutputChunk]:
    """Send ``text`` (if any), stream silence as a live microphone does, until the reply's final chunk."""
    if text is not None:
        await session.send_text(text)
    chunks: list[s2s.AudioOutputChunk] = []

    async def read() -> None:
        async for chunk in session.receive_audio():
            chunks.append(chunk)
            if chunk.is_final:
                return

    reader = asyncio.create_task(read())
    deadline = time.monotonic() + timeout_s
    while not reader.done() and time.monotonic() < deadline:
        await session.send_audio(np.zeros(1024, np.int16))
        await asyncio.sleep(0.002)
    if not reader.done():
        reader.cancel()
        raise AssertionError(f"no final chunk within {timeout_s} s; events: {[e.kind for e in events]}")
    return chunks


async def _collect(session: s2s.S2SSession, into: list[ev.Event]) -> None:
    async for event in session.events():
        into.append(event)


def _assistant_speculative(events: list[ev.Event]) -> str:
    return " ".join(
        e.text
        for e in events
        if isinstance(e, ev.Transcript) and e.role == "ASSISTANT" and e.stage == "SPECULATIVE"
    )


@pytest.fixture(scope="module")
def speech_provider() -> s2s.StreamingS2SProvider:
    # The speech engine's brain answers with the rule-based responder; typed text needs no ASR.
    provider = s2s.new_provider("local", engine="speech", latency_target="low")
    assert isinstance(provider, s2s.StreamingS2SProvider)
    return provider


async def test_replayed_history_reaches_the_model_and_is_recalled(
    speech_provider: s2s.StreamingS2SProvider,
) -> None:
    events: list[ev.Event] = []
    ctx = s2s.ConversationContext(history=list(HISTORY))
    async with await speech_provider.start_streaming(ctx) as session:
        collector = asyncio.create_task(_collect(session, events))
        chunks = await _reply_to_text(session, "What did I say earlier?", events)
    await asyncio.wait({collector}, timeout=5)
    assert chunks[-1].is_final and sum(len(c.audio) for c in chunks) > 0
    assert _assistant_speculative(events) == "Earlier you said: My name is Sam, by the way."
    # The first usageEvent counts the setup's text, history included (~4 characters a token).
    first_usage = next(e for e in events if isinstance(e, ev.Usage))
    history_chars = sum(len(text) for _, text in HISTORY)
    assert first_usage.input_tokens >= history_chars // 4


async def test_the_model_speaks_first_when_text_follows_the_setup(
    speech_provider: s2s.StreamingS2SProvider,
) -> None:
    events: list[ev.Event] = []
    async with await speech_provider.start_streaming(s2s.ConversationContext()) as session:
        collector = asyncio.create_task(_collect(session, events))
        # Right after the setup: no audio has been sent yet.
        assert session.audio_events_sent == 0
        await session.send_text("Hi")
        chunks = await _reply_to_text(session, None, events)
    await asyncio.wait({collector}, timeout=5)
    kinds = [e.kind for e in events]
    assert chunks[-1].is_final and sum(len(c.audio) for c in chunks) > 24000 // 2  # over 0.5 s of speech
    assert _assistant_speculative(events).startswith("Hello!")
    # Nobody spoke: no user transcript and no speech boundaries, but a completion began.
    assert not [e for e in events if isinstance(e, ev.Transcript) and e.role == "USER"]
    assert "ServiceSpeechStarted" not in kinds and "CompletionStarted" in kinds
    assert kinds.index("CompletionStarted") < kinds.index("AudioOutput")


async def test_a_typed_question_calls_a_tool_answered_by_hand(
    speech_provider: s2s.StreamingS2SProvider,
) -> None:
    # No handler: the ToolUse reaches events() and the application answers with send_tool_result.
    tool = s2s.Tool("getMoonPhase", "The moon's phase on a date.", {"type": "object", "properties": {}})
    events: list[ev.Event] = []
    async with await speech_provider.start_streaming(s2s.ConversationContext(tools=[tool])) as session:
        collector = asyncio.create_task(_collect(session, events))
        await session.send_text("What is the phase of the moon today?")
        use = None
        for _ in range(500):
            use = next((e for e in events if isinstance(e, ev.ToolUse)), None)
            if use is not None:
                break
            await session.send_audio(np.zeros(320, np.int16))
            await asyncio.sleep(0.01)
        assert use is not None and use.tool_name == "getMoonPhase"
        await session.send_tool_result(use.tool_use_id, {"phase": "first quarter", "lit": "50 percent"})
        await _reply_to_text(session, None, events)
    await asyncio.wait({collector}, timeout=5)
    kinds = [e.kind for e in events]
    assert kinds.index("ToolUse") < kinds.index("ToolResultSent") < kinds.index("AudioOutput")
    said = _assistant_speculative(events)
    assert "first quarter" in said and "50 percent" in said  # the reply is built on our result
    (tool_end,) = [e for e in events if isinstance(e, ev.ContentEnded) and e.type == "TOOL"]
    assert tool_end.stop_reason == "TOOL_USE"


async def test_history_over_the_limit_is_refused_before_anything_is_sent(
    speech_provider: s2s.StreamingS2SProvider,
) -> None:
    long_turn = "word " * 200  # 1,000 bytes
    history = [("USER" if i % 2 == 0 else "ASSISTANT", long_turn) for i in range(42)]
    with pytest.raises(s2s.ConfigError) as info:
        await speech_provider.start_streaming(s2s.ConversationContext(history=history))
    message = str(info.value)
    assert str(catalog.HISTORY_MAX_BYTES) in message and "40 KB" in message and "42000" in message
    # One message fewer of each role fits, and the stream opens with it.
    fits = history[:40]
    async with await speech_provider.start_streaming(s2s.ConversationContext(history=fits)) as session:
        await session.send_audio(np.zeros(3200, np.int16))
        assert not session.closed and session.error is None
