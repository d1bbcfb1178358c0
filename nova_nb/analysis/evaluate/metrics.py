"""What one evaluated recording gives: the USER transcript and its word error rate, latency per turn,
the barge-in, and token usage per turn and per session. Computed from the recording's events alone
(``events.jsonl``), with the definitions of ``docs/EVALUATE.md``, so anyone can recompute them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..latency import LATENCY_METRICS, barge_ins, turns
from .prices import TOKEN_KINDS

__all__ = ["NORMALISATION", "corpus_wer", "session_usage", "turn_usage", "user_transcript", "word_error"]

Event = Mapping[str, Any]

#: How texts are normalised before words are compared (jiwer transforms, in this order): lower case,
#: punctuation removed, runs of spaces made one, ends stripped, split into words.
NORMALISATION = "ToLowerCase, RemovePunctuation, RemoveMultipleSpaces, Strip, ReduceToListOfListOfWords"


def _transform() -> Any:
    import jiwer

    return jiwer.Compose(
        [
            jiwer.ToLowerCase(),
            jiwer.RemovePunctuation(),
            jiwer.RemoveMultipleSpaces(),
            jiwer.Strip(),
            jiwer.ReduceToListOfListOfWords(),
        ]
    )


def word_error(reference: str, hypothesis: str) -> dict[str, Any]:
    """Word error rate of ``hypothesis`` against ``reference`` with jiwer (normalised: :data:`NORMALISATION`).

    Also ``wer_raw``: jiwer's own default (words split on spaces, case and punctuation kept).

    Raises
    ------
    ValueError
        When the reference has no words after normalisation (the rate would divide by zero).
    """
    import jiwer

    transform = _transform()
    if not transform(reference) or not transform(reference)[0]:
        raise ValueError(
            f"the expected text {reference!r} has no words after normalisation ({NORMALISATION})"
        )
    out = jiwer.process_words(reference, hypothesis, transform, transform)
    raw = jiwer.process_words(reference, hypothesis) if hypothesis.strip() else None
    return {
        "reference": reference,
        "hypothesis": hypothesis,
        "wer": float(out.wer),
        "wer_raw": float(raw.wer) if raw is not None else 1.0 if not hypothesis.strip() else None,
        "hits": int(out.hits),
        "substitutions": int(out.substitutions),
        "deletions": int(out.deletions),
        "insertions": int(out.insertions),
        "reference_words": int(out.hits + out.substitutions + out.deletions),
    }


def corpus_wer(pairs: Sequence[tuple[str, str]]) -> float | None:
    """WER over many (reference, hypothesis) pairs: all errors over all reference words (jiwer)."""
    if not pairs:
        return None
    import jiwer

    transform = _transform()
    out = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs], transform, transform)
    return float(out.wer)


def user_transcript(events: Sequence[Event], before_t: float | None = None) -> str:
    """The USER transcripts the model settled on (stage FINAL, or none), in order, joined by spaces.

    ``before_t`` keeps only those that arrived before it (the barge-in's onset: what follows is the
    interjection, not the item's question).
    """
    texts = [
        str(e.get("text") or "").strip()
        for e in events
        if e["kind"] == "Transcript"
        and e.get("role") == "USER"
        and e.get("stage") in ("FINAL", None)
        and (before_t is None or e["t"] < before_t)
    ]
    return " ".join(t for t in texts if t)


def _totals(e: Event) -> dict[str, int]:
    """Cumulative token counts of one Usage line, by kind (``details.total``) plus input/output/total."""
    total = (e.get("details") or {}).get("total") or {}
    out: dict[str, int] = {}
    for side in ("input", "output"):
        part = total.get(side) or {}
        out[f"{side}_speech"] = int(part.get("speechTokens") or 0)
        out[f"{side}_text"] = int(part.get("textTokens") or 0)
    out["input"] = int(e.get("input_tokens") or 0)
    out["output"] = int(e.get("output_tokens") or 0)
    out["total"] = int(e.get("total_tokens") or 0)
    return out


_KEYS = (*TOKEN_KINDS, "input", "output", "total")


def _cumulative(events: Sequence[Event]) -> list[tuple[float, dict[str, int]]]:
    """(t, running totals) per Usage line. The service's totals are cumulative per stream; a drop
    (a new stream after a reconnect or continuation) starts a new run, added to what came before."""
    out: list[tuple[float, dict[str, int]]] = []
    base = dict.fromkeys(_KEYS, 0)
    last = dict.fromkeys(_KEYS, 0)
    for e in events:
        if e["kind"] != "Usage":
            continue
        now = _totals(e)
        if now["total"] < last["total"]:
            base = {k: base[k] + last[k] for k in _KEYS}
        last = now
        out.append((e["t"], {k: base[k] + now[k] for k in _KEYS}))
    return out


def session_usage(events: Sequence[Event]) -> dict[str, int] | None:
    """Tokens of the whole session (the last cumulative totals); None when no Usage line came."""
    runs = _cumulative(events)
    return dict(runs[-1][1]) if runs else None


def turn_usage(events: Sequence[Event]) -> list[dict[str, int]] | None:
    """Tokens per turn: the growth of the cumulative totals from the turn's decision (its USER FINAL
    transcript, else its first audio) to the next turn's. What came before the first turn (the setup:
    system prompt, history) is in :func:`session_usage` only. None when no Usage line came."""
    runs = _cumulative(events)
    if not runs:
        return None
    bounds = [
        t.decision_t if t.decision_t is not None else t.first_audio_t
        for t in turns(events)
        if t.first_audio_t is not None
    ]

    def at(limit: float) -> dict[str, int]:
        # The totals reached before ``limit``.
        before = [c for t, c in runs if t < limit]
        return before[-1] if before else dict.fromkeys(_KEYS, 0)

    out = []
    for i, start in enumerate(bounds):
        end = bounds[i + 1] if i + 1 < len(bounds) else float("inf")
        a, b = at(float(start or 0.0)), at(end)
        out.append({k: b[k] - a[k] for k in _KEYS})
    return out


def analyse(
    events: Sequence[Event], meta: Mapping[str, Any], reference: str | None, barge_in_offset_s: float | None
) -> dict[str, Any]:
    """Everything the results line of one recording carries (see ``docs/EVALUATE.md``)."""
    all_turns = turns(events)
    found = barge_ins(events) if barge_in_offset_s is not None else []
    cut = None
    if barge_in_offset_s is not None and all_turns and all_turns[0].first_audio_t is not None:
        # The interjection is spoken at the earliest ``offset`` after the first reply's first audio:
        # USER transcripts from then on are the interjection's, not the item's question.
        cut = all_turns[0].first_audio_t + barge_in_offset_s
    heard = user_transcript(events, before_t=cut)
    turn_rows = []
    for t in all_turns:
        row: dict[str, Any] = {
            "index": t.index,
            "user_text": t.user_text,
            "reply_text": t.reply_text,
            "speech_end_source": t.speech_end_source,
            "interrupted": t.interrupted,
            "stop_reason": t.stop_reason,
        }
        for m in LATENCY_METRICS:
            row[m] = getattr(t, m)
        turn_rows.append(row)
    usage_turns = turn_usage(events)
    for row, used in zip(turn_rows, usage_turns or [], strict=False):
        row["tokens"] = used
    result: dict[str, Any] = {
        "user_text": heard,
        "turns": turn_rows,
        "usage": session_usage(events),
        "timed_out": bool((meta.get("user") or {}).get("timed_out")),
        "pace": (meta.get("user") or {}).get("pace"),
    }
    if reference is not None:
        result["wer"] = word_error(reference, heard)
    if barge_in_offset_s is not None:
        if found:
            b = found[0]
            result["barge_in"] = {
                "happened": True,
                "reaction_s": b.reaction_s,
                "flush_s": b.flush_s,
                "heard_s": b.heard_s,
                "onset_source": b.onset_source,
                "signal": b.signal,
                "planned_words": b.planned_words,
                "final_words": b.final_words,
                "heard_text_fraction": b.heard_text_fraction,
            }
        else:
            result["barge_in"] = {
                "happened": False,
                "why": "no interruption: the reply was over (or not yet playing) when the interjection came",
            }
    # A session renews its stream after a recoverable failure (replaying recent audio): the item's
    # figures are then not those of one clean conversation, so the results say so.
    renewals = [e for e in events if e["kind"] == "Reconnecting"]
    if renewals:
        result["reconnects"] = len(renewals)
        result["reconnect_error"] = f"{renewals[-1].get('code')}: {renewals[-1].get('message')}"
    errors = [e for e in events if e["kind"] == "StreamErrorEvent"]
    if errors:
        last = errors[-1]
        result["stream_error"] = f"{last.get('code')}: {last.get('message')}"
    return result
