"""What the emulated model says: a small rule-based responder, replaceable by any callable.

A responder is ``callable(text) -> str`` or ``callable(text, context) -> str``; the second form gets a
:class:`ReplyContext` with the system prompt, the history and the turn number, so a text LLM can be
plugged in with the conversation it needs. Rules are deliberately few and predictable: tests and
notebooks can say what reply to expect.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError

GREETING = re.compile(r"\b(hello|hi|hey|good (morning|afternoon|evening))\b", re.I)
WHO = re.compile(r"\b(who|what) are you\b|\byour name\b", re.I)
TIME = re.compile(r"\bwhat('s| is)? (the )?time\b|\btime is it\b", re.I)
DATE = re.compile(r"\bwhat('s| is)? (the |today's )?date\b|\bwhat day is (it|today)\b", re.I)
REPEAT = re.compile(r"\b(repeat|say) (after me|this|that)\b[:,]?\s*(?P<rest>.*)", re.I)
THANKS = re.compile(r"\b(thanks|thank you)\b", re.I)
BYE = re.compile(r"\b(bye|goodbye|see you)\b", re.I)
#: Asking about earlier messages. The real model answers from the chat history it was given
#: (docs/PROTOCOL.md §2, §9); this rule quotes the history's last USER message instead.
RECALL = re.compile(
    r"\bwhat did i (say|tell you|ask)\b|\bwhat was i (saying|asking|talking about)\b"
    r"|\bwhat was the last thing i (said|told you|asked)\b|\bdo you remember\b"
    r"|\bremind me what i (said|told you|asked)\b",
    re.I,
)


@dataclass(frozen=True)
class ReplyContext:
    """What a responder may know besides the user's words."""

    system_prompt: str = ""
    history: tuple[tuple[str, str], ...] = ()
    turn: int = 0
    voice_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


Responder = Callable[..., str]


def rule_based_reply(
    text: str, context: ReplyContext | None = None, *, now: dt.datetime | None = None
) -> str:
    """Answer greetings, "who are you", the time and date, "repeat after me", "what did I say
    earlier" (from the history in ``context``); otherwise echo back.

    >>> rule_based_reply("hello there")
    'Hello! How can I help you today?'
    >>> rule_based_reply("please repeat after me: blue sky")
    'blue sky'
    """
    said = text.strip()
    if not said:
        return "Sorry, I didn't catch that. Could you say it again?"
    if m := REPEAT.search(said):
        rest = m.group("rest").strip(" .")
        return rest or "What should I repeat?"
    if RECALL.search(said):
        return recall_reply(context)
    now = now or dt.datetime.now()
    if TIME.search(said):
        return f"It is {now.strftime('%H:%M')}."
    if DATE.search(said):
        return f"Today is {now.strftime('%A, %B')} {now.day}, {now.year}."
    if WHO.search(said):
        return "I am the nova_nb emulator, a local stand-in for Amazon Nova Sonic."
    if THANKS.search(said):
        return "You're welcome!"
    if BYE.search(said):
        return "Goodbye! Talk to you soon."
    if GREETING.search(said):
        return "Hello! How can I help you today?"
    return f"You said: {said.rstrip('.?!')}."


def recall_reply(context: ReplyContext | None) -> str:
    """What the rules say when asked about earlier messages: the last USER message of the history.

    Only the history given at setup counts (what a client replays, e.g. after a reconnect); turns
    spoken earlier in the same stream are not remembered by these rules.

    >>> recall_reply(ReplyContext(history=(("USER", "I'm Sam."), ("ASSISTANT", "Hi Sam!"))))
    "Earlier you said: I'm Sam."
    >>> recall_reply(None)
    'I was given no earlier messages in this conversation.'
    """
    said = [text.strip() for role, text in (context.history if context else ()) if role == "USER"]
    said = [text for text in said if text]
    if not said:
        return "I was given no earlier messages in this conversation."
    return f"Earlier you said: {said[-1].rstrip(' .?!')}."


def call_responder(responder: Responder, text: str, context: ReplyContext) -> str:
    """Call a responder with or without the context, depending on what it accepts."""
    try:
        params = inspect.signature(responder).parameters.values()
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        wants_context = len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)
    except (TypeError, ValueError):  # builtins without a signature
        wants_context = False
    reply = responder(text, context) if wants_context else responder(text)
    if not isinstance(reply, str):
        raise UsageError(f"a responder must return the reply text as a str, got {type(reply).__name__}")
    return reply


def tool_words(name: str) -> list[str]:
    """The words of a tool name: ``getWeather`` / ``get_weather`` / ``get-weather`` → get, weather."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).replace("_", " ").replace("-", " ")
    return [w.lower() for w in spaced.split() if w]


def find_tool(text: str, tools: list[dict[str, Any]], phrases: dict[str, str] | None = None) -> str | None:
    """The tool a user turn asks for, deterministically: a configured phrase that occurs in the text,
    or the tool's name (its words, ignoring a leading get/fetch/lookup) all occurring in the text."""
    lowered = text.lower()
    for phrase, tool_name in (phrases or {}).items():
        if phrase.lower() in lowered:
            return tool_name
    words = set(re.findall(r"[a-z0-9]+", lowered))
    for spec in tools:
        name = (spec.get("toolSpec") or {}).get("name", "")
        needed = [w for w in tool_words(name) if w not in ("get", "fetch", "lookup", "find", "tool")]
        if needed and all(w in words for w in needed):
            return str(name)
    return None
