"""The order of Nova Sonic output events for one prompt, as one state machine both roles share.

Like h11's ``_state.py``: a transition table says which event names each state accepts, and a few
rules check the content blocks (pairing by ``contentId``, which events belong in which block). The
client (``NovaClientProtocol.receive``) feeds it every output event and *flags* a violation, because a
real service that breaks the order must not kill the conversation; the emulator feeds it every event
it is about to send and *raises*, because an emulator that breaks the order is a bug.

The documented order of one turn (docs/PROTOCOL.md §4, AWS page ``sonic-output-events``)::

    completionStart → USER TEXT (FINAL, the transcript) → [TOOL] → ASSISTANT TEXT (SPECULATIVE)
    → ASSISTANT AUDIO → ASSISTANT TEXT (FINAL) → usageEvent … → completionEnd

States of the prompt (:class:`OutputOrder.state`)::

    BEFORE_COMPLETION --completionStart--> IN_COMPLETION --completionEnd--> COMPLETION_ENDED
          ^ usageEvent, userSpeech*           ^ content events, usageEvent,     | completionStart
                                              | userSpeech*                     v (a new cycle)
                                              +----------------------------------+

Inside ``IN_COMPLETION`` each open block has a kind (USER TEXT, ASSISTANT TEXT SPECULATIVE/FINAL,
ASSISTANT AUDIO, TOOL): ``textOutput`` needs an open TEXT block, ``audioOutput`` an open AUDIO
block, ``toolUse`` an open TOOL block, each named by its ``contentId``; ``contentEnd`` closes an open
block of the same type; ``completionEnd`` needs every block closed.

What the real service is known to do is accepted, not flagged (AWS pages, peer clients' comments and
captured Nova 2 sessions, 2026):

- ``usageEvent`` before ``completionStart`` (the first one counts the system prompt; captures);
- ``userSpeechStart``/``userSpeechEnd`` anywhere, also before ``completionStart`` (captures; peer:
  BerriAI/litellm issue 38346);
- one ``completionStart`` per prompt, or one per turn (the AWS page's reading): a new cycle may begin
  after ``completionEnd``;
- every stop reason on any block: ``PARTIAL_TURN`` on USER text and on every block but the last
  (captures; peer: Strands ``bedrock.py``), ``END_TURN`` on an AUDIO block cut by barge-in (peer:
  Pipecat ``llm.py``), ``INTERRUPTED`` on AUDIO or TEXT (docs/PROTOCOL.md §5);
- blocks that overlap (barge-in: the AUDIO block ends ``END_TURN``, then a TEXT block ``INTERRUPTED``;
  peer: Pipecat) and a late ``contentEnd`` ``INTERRUPTED`` for a block already closed (peer: Strands);
- the ``{ "interrupted" : true }`` marker as a ``textOutput`` in any open TEXT block, in any spacing
  (docs/PROTOCOL.md §5);
- ASSISTANT blocks with no USER block before them (typed input, or the model speaking first:
  AWS page ``sonic-cross-modal``), FINAL texts that never come (prompt closed first; captures), and
  several USER FINAL blocks for one utterance (captures).

Pure: no I/O, no loop. Cost per event: a dict lookup or two (``audioOutput`` is the hot path).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..errors import ProtocolError, one_of
from . import wire

#: Where each rule comes from: the project's protocol notes, section 4 (output events).
_S4: Final = "docs/PROTOCOL.md §4"

BEFORE_COMPLETION: Final = "BEFORE_COMPLETION"
IN_COMPLETION: Final = "IN_COMPLETION"
COMPLETION_ENDED: Final = "COMPLETION_ENDED"

#: Events that may come in every state (see the module docstring for their sources).
_ANYWHERE: Final = (wire.USAGE_EVENT, wire.USER_SPEECH_START, wire.USER_SPEECH_END)

#: state → {event name accepted there → next state}. Missing: a violation.
TRANSITIONS: Final[dict[str, dict[str, str]]] = {
    # docs/PROTOCOL.md §4: the output of a prompt opens with completionStart.
    BEFORE_COMPLETION: {wire.COMPLETION_START: IN_COMPLETION},
    IN_COMPLETION: {
        wire.CONTENT_START: IN_COMPLETION,
        wire.TEXT_OUTPUT: IN_COMPLETION,
        wire.AUDIO_OUTPUT: IN_COMPLETION,
        wire.TOOL_USE: IN_COMPLETION,
        wire.CONTENT_END: IN_COMPLETION,
        wire.COMPLETION_END: COMPLETION_ENDED,
    },
    # AWS sonic-output-events has completionStart begin each response cycle; captures show one per
    # prompt. Accept both: a new cycle may start after completionEnd, nothing else may come.
    COMPLETION_ENDED: {wire.COMPLETION_START: IN_COMPLETION},
}
for _state, _table in TRANSITIONS.items():
    for _name in _ANYWHERE:
        _table[_name] = _state
del _state, _table, _name

#: Content type → roles the service uses for it (docs/PROTOCOL.md §4; captures: TOOL blocks are
#: role TOOL, AUDIO blocks role ASSISTANT, TEXT blocks USER or ASSISTANT).
BLOCK_ROLES: Final[dict[str, tuple[str, ...]]] = {
    "TEXT": ("USER", "ASSISTANT"),
    "AUDIO": ("ASSISTANT",),
    "TOOL": ("TOOL",),
}
#: Which content type each in-block event needs (docs/PROTOCOL.md §4).
EVENT_BLOCK_TYPE: Final[dict[str, str]] = {
    wire.TEXT_OUTPUT: "TEXT",
    wire.AUDIO_OUTPUT: "AUDIO",
    wire.TOOL_USE: "TOOL",
}


class OutputOrderError(ProtocolError):
    """An output event out of order: ``event`` (its name), the ``state`` it came in, what was ``expected``.

    ``str()`` says all three and cites the rule's source.
    """

    def __init__(self, event: str, state: str, expected: str, problem: str, source: str) -> None:
        super().__init__(f"{event} {problem} in state {state}; expected {expected} [{source}]")
        self.event = event
        self.state = state
        self.expected = expected
        self.source = source


@dataclass(frozen=True, slots=True)
class OpenBlock:
    """A content block the service opened and has not closed: its type, role and generation stage."""

    type: str
    role: str
    stage: str | None

    @property
    def kind(self) -> str:
        return " ".join(p for p in (self.role, self.type, self.stage) if p)


class OutputOrder:
    """The output order of one prompt. Feed events in order with :meth:`check` or :meth:`require`.

    ``allow_unknown``: an event name not in ``wire.OUTPUT_EVENT_NAMES`` is ignored (the client passes
    such events on; docs/PROTOCOL.md §4) or, when False (the emulator), a violation.

    After a violation the machine still applies what it can of the event (a block is opened or
    closed as the event says), so one bad event is reported once, not again at every later event.
    """

    def __init__(self, *, allow_unknown: bool = True) -> None:
        self.allow_unknown = allow_unknown
        self.state: str = BEFORE_COMPLETION
        #: Blocks open now, by contentId.
        self.open_blocks: dict[str, OpenBlock] = {}
        self._closed: set[str] = set()
        #: Turns seen: a USER TEXT block after ASSISTANT output (or the first one) starts a turn.
        self.turns = 0
        self._assistant_spoke = True

    # -- the two ways in -------------------------------------------------------------------------

    def check(self, name: str, body: Mapping[str, Any]) -> OutputOrderError | None:
        """Advance with one event; return the violation it makes, or None. Never raises it."""
        try:
            self._advance(name, body)
        except OutputOrderError as exc:
            return exc
        return None

    def require(self, name: str, body: Mapping[str, Any]) -> None:
        """Advance with one event; raise :class:`OutputOrderError` if it breaks the order."""
        self._advance(name, body)

    def require_event(self, event: Mapping[str, Any]) -> None:
        """:meth:`require` for a whole ``{"event": {NAME: BODY}}`` dict, as the emulator sends it."""
        name, body = wire.split_event(event)
        self._advance(name, body)

    # -- the machine -----------------------------------------------------------------------------

    def _fail(self, name: str, problem: str, expected: str, source: str) -> OutputOrderError:
        return OutputOrderError(name, self.state, expected, problem, source)

    def _advance(self, name: str, body: Mapping[str, Any]) -> None:
        table = TRANSITIONS[self.state]
        following = table.get(name)
        if following is None:
            if name not in wire.OUTPUT_EVENT_NAMES:
                if self.allow_unknown:
                    return
                raise self._fail(
                    name,
                    "is not a Nova Sonic output event",
                    one_of(wire.OUTPUT_EVENT_NAMES),
                    _S4,
                )
            if name == wire.CONTENT_END and self._late_interrupted(body):
                return
            raise self._fail(name, "is out of order", one_of(table), _S4)
        if name in EVENT_BLOCK_TYPE:
            self._in_block(name, body)
        elif name == wire.CONTENT_START:
            self._content_start(body)
        elif name == wire.CONTENT_END:
            self._content_end(body)
        elif name == wire.COMPLETION_END and self.open_blocks:
            still_open = ", ".join(f"{b.kind} {cid}" for cid, b in self.open_blocks.items())
            self.open_blocks.clear()
            self.state = following
            raise OutputOrderError(
                name,
                IN_COMPLETION,
                "a contentEnd for every open block first",
                f"while blocks are still open ({still_open})",
                _S4,
            )
        self.state = following

    def _content_id(self, name: str, body: Mapping[str, Any]) -> str:
        cid = body.get("contentId")
        if not isinstance(cid, str) or not cid:
            raise self._fail(name, "has no contentId", "a non-empty contentId string", _S4)
        return cid

    def _in_block(self, name: str, body: Mapping[str, Any]) -> None:
        cid = self._content_id(name, body)
        need = EVENT_BLOCK_TYPE[name]
        block = self.open_blocks.get(cid)
        if block is None:
            where = "of a closed block" if cid in self._closed else "of no block"
            raise self._fail(name, f"for contentId {cid} {where}", f"it inside an open {need} block", _S4)
        if block.type != need:
            raise self._fail(
                name,
                f"inside the {block.kind} block {cid}",
                f"it inside an open {need} block",
                _S4,
            )

    def _content_start(self, body: Mapping[str, Any]) -> None:
        name = wire.CONTENT_START
        cid = self._content_id(name, body)
        ctype, role = body.get("type"), body.get("role")
        stage = wire.generation_stage(body)
        block = OpenBlock(str(ctype), str(role), stage)
        reused = cid in self.open_blocks or cid in self._closed
        # Open it whatever is wrong with it, so its own events are not reported again.
        self.open_blocks[cid] = block
        self._closed.discard(cid)
        if reused:
            raise self._fail(name, f"reuses contentId {cid}", "a new contentId for every block", _S4)
        roles = BLOCK_ROLES.get(str(ctype))
        if roles is None:
            raise self._fail(name, f"has type {ctype!r}", f"type {one_of(BLOCK_ROLES)}", _S4)
        if role not in roles:
            raise self._fail(name, f"of a {ctype} block has role {role!r}", f"role {one_of(roles)}", _S4)
        if stage is not None and stage not in wire.GENERATION_STAGES:
            raise self._fail(
                name,
                f"has generationStage {stage!r}",
                f"generationStage {one_of(wire.GENERATION_STAGES)}",
                _S4,
            )
        if role == "USER":
            # The USER block is the service's transcript of what it heard: final, never speculative
            # (docs/PROTOCOL.md §4; captures send generationStage FINAL).
            if stage == "SPECULATIVE":
                raise self._fail(
                    name,
                    "opens a SPECULATIVE USER TEXT block",
                    "USER TEXT with generationStage FINAL",
                    _S4,
                )
            if self._assistant_spoke:
                self.turns += 1
                self._assistant_spoke = False
        else:
            self._assistant_spoke = True

    def _late_interrupted(self, body: Mapping[str, Any]) -> bool:
        """A contentEnd INTERRUPTED for a block that already ended, even after the response ended: the
        service does send it (peer: Strands ``bedrock.py``, 2026). Accepted, and changes nothing."""
        return body.get("stopReason") == "INTERRUPTED" and body.get("contentId") in self._closed

    def _content_end(self, body: Mapping[str, Any]) -> None:
        name = wire.CONTENT_END
        cid = self._content_id(name, body)
        stop = body.get("stopReason")
        block = self.open_blocks.pop(cid, None)
        if block is None:
            if self._late_interrupted(body):
                return
            where = "a block already closed" if cid in self._closed else "no open block"
            raise self._fail(
                name, f"for contentId {cid}, {where}", "a contentEnd only for an open block", _S4
            )
        self._closed.add(cid)
        ctype = body.get("type")
        if ctype is not None and ctype != block.type:
            raise self._fail(
                name,
                f"says type {ctype!r} for the {block.kind} block {cid}",
                f"type {block.type!r}, as its contentStart said",
                _S4,
            )
        if stop is not None and stop not in wire.STOP_REASONS:
            raise self._fail(name, f"has stopReason {stop!r}", f"stopReason {one_of(wire.STOP_REASONS)}", _S4)
