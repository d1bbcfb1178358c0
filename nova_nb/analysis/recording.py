"""Session recordings: both audio streams and every event on one clock, written as the session runs.

A :class:`SessionRecorder` attaches to a session through its listeners
(``add_listener`` for typed events, ``add_input_listener`` for the input frames as sent) and writes a
folder incrementally, so an hour-long session never sits in memory::

    meta.json      what was recorded: clock origin, rates, session settings, counts, layout rules
    input.wav      the user's audio as sent, placed on the recording clock (16-bit mono)
    output.wav     the model's audio as a real-time player would have played it (16-bit mono)
    events.jsonl   one JSON object per line: every session event, every input frame, and the
                   recorder's own observations (speech start/end, player flushes, marks)

:meth:`Recording.load` reads the folder back. The schema, the time-axis rules and the latency
definitions built on them are documented in ``docs/RECORDING.md``.

Time axis
---------
Every line of ``events.jsonl`` has ``t_monotonic`` (``time.monotonic()``, the clock of all nova_nb
timestamps) and ``t = t_monotonic - t0``, seconds since the recording started.

Placement uses ``t`` exactly as written on the line (rounded to 1 µs), so that anyone can redo it
from ``events.jsonl`` alone.

*Input.* An input frame queued at ``t`` occupies ``[t, t + n / rate)``. The first frame is written to
``input.wav`` at sample ``max(0, round(t * rate))`` (digital silence before it), so that sample ``i``
of the file is at ``i / rate`` on the recording clock from the start. A later frame is written at
``round(t * rate)`` when that is more than ``gap_tolerance_s`` past the end of what is already written
(the gap is filled with digital silence: the microphone was off), otherwise right after the previous
frame (scheduling jitter is absorbed). Its ``InputAudio`` line gives the sample where it landed.
Audio sent faster than real time therefore runs ahead of the clock; record in real time
(``pace=True``) for pictures whose audio and events line up.

*Output.* The model's audio arrives in bursts, faster than real time. ``output.wav`` holds what a
simulated real-time player would have played: each chunk starts at ``max(arrival, end of the previous
chunk)``, plays gap-free, and everything not yet played is dropped when an ``Interruption`` event
arrives (``PlayerFlushed`` line). An ``AudioOutput`` line keeps the arrival time ``t`` and gives the
sample of ``output.wav`` where the chunk was scheduled to start.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self

import numpy as np
import numpy.typing as npt

from ..audio import EnergySpeechDetector, WavWriter, rms_dbfs
from ..errors import NovaNbError
from ..s2s import events as ev

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Recordable",
    "Recording",
    "RecordingError",
    "SessionRecorder",
    "SpeechDetector",
]

#: Identifies a recording folder in ``meta.json``.
FORMAT = "nova_nb.recording"
#: Bumped when the layout or the meaning of a field changes.
FORMAT_VERSION = 1
INPUT_WAV = "input.wav"
OUTPUT_WAV = "output.wav"
EVENTS_JSONL = "events.jsonl"
META_JSON = "meta.json"
#: What the recorder wrote (events.jsonl, the WAV data and headers) is pushed to the OS at most this
#: long after it was written, idle or not (half of the 0.5 s RECORDING.md promises, for scheduling slack).
_FLUSH_EVERY_S = 0.25


class RecordingError(NovaNbError):
    """A recording folder is missing, incomplete or not a nova_nb recording."""


class RecordingWarning(UserWarning):
    """Something was wrong with a recording but it could be read: e.g. a torn last line was dropped."""


class Recordable(Protocol):
    """What a recorder needs from a session (``NovaSession`` of the amazon_nova and local providers)."""

    def add_listener(self, callback: Callable[[ev.Event], None]) -> Callable[[], None]: ...

    def add_input_listener(self, callback: Callable[[bytes, float, int], None]) -> Callable[[], None]: ...


#: Finds where the user's speech starts and ends in the input frames: the one energy detector
#: (:class:`nova_nb.audio.EnergySpeechDetector`), the emulator's scripted engine decides turns with.
SpeechDetector = EnergySpeechDetector


class _Player:
    """A simulated real-time player writing what it plays to a WavWriter, on the recording clock."""

    def __init__(self, writer: WavWriter) -> None:
        self.writer = writer
        self.rate = writer.rate
        self.written = 0  # samples in the file
        self.end = 0  # where the last scheduled chunk ends, in samples
        self.queue: deque[list[Any]] = deque()  # [start, pcm, content_id, offset]
        self.played: dict[str, int] = {}  # samples written, per content id

    def schedule(self, pcm: npt.NDArray[np.int16], t: float, content_id: str) -> int:
        start = max(self.end, round(t * self.rate))
        self.end = start + pcm.size
        self.queue.append([start, pcm, content_id, 0])
        return start

    def advance(self, t: float) -> None:
        """Write everything that has been played by time ``t`` (``inf``: play out the rest)."""
        limit = math.inf if math.isinf(t) else round(t * self.rate)
        while self.queue and self.queue[0][0] + self.queue[0][3] < limit:
            item = self.queue[0]
            start, pcm, cid, offset = item
            if self.written < start + offset:
                self.writer.write(np.zeros(start + offset - self.written, dtype=np.int16))
                self.written = start + offset
            stop = pcm.size if math.isinf(limit) else min(pcm.size, int(limit - start))
            if stop > offset:
                self.writer.write(pcm[offset:stop])
                self.written += stop - offset
                self.played[cid] = self.played.get(cid, 0) + stop - offset
            if stop >= pcm.size:
                self.queue.popleft()
            else:
                item[3] = stop
                break

    def flush(self, t: float, content_id: str | None) -> tuple[int, int]:
        """Stop at ``t``: drop all that is queued. Returns (played samples of content_id, dropped)."""
        self.advance(t)
        dropped = sum(item[1].size - item[3] for item in self.queue)
        self.queue.clear()
        self.end = max(self.written, round(t * self.rate))
        return self.played.get(content_id or "", 0), dropped


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return repr(value)


def _event_fields(event: ev.Event) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(event):
        if f.name in ("timestamp", "audio"):
            continue
        out[f.name] = _jsonable(getattr(event, f.name))
    return out


def _session_settings(session: Any) -> dict[str, Any]:
    """What a session says about its settings, for meta.json (best effort, never fails)."""
    info: dict[str, Any] = {"class": type(session).__name__}
    config = getattr(session, "config", None)
    if config is not None:
        for name in (
            "provider",
            "model_id",
            "language",
            "latency_target",
            "frame_ms",
            "input_sample_rate",
            "output_sample_rate",
            "region",
        ):
            if hasattr(config, name):
                info[name] = _jsonable(getattr(config, name))
        try:
            info["endpointing_sensitivity"] = config.endpointing_sensitivity
        except Exception:
            pass
    for name in ("voice_id", "prompt_name", "enable_streaming"):
        try:
            info[name] = _jsonable(getattr(session, name))
        except Exception:  # a property a session does not have, or cannot answer now
            pass
    context = getattr(session, "context", None)
    for name in ("session_id", "conversation_id", "user_id"):
        if context is not None and hasattr(context, name):
            info[f"context_{name}"] = _jsonable(getattr(context, name))
    return info


class SessionRecorder:
    """Record a session to a folder as it runs.

    Parameters
    ----------
    folder : str or os.PathLike
        Created if missing; its recording files are overwritten.
    session : Recordable, optional
        Attach at once (see :meth:`attach`).
    input_rate, output_rate : int, optional
        Sample rates of the two WAV files; by default the session's configured rates (16000 and
        24000 for Nova Sonic).
    detector : EnergySpeechDetector, optional
        How user speech is found in the input frames (``UserSpeechStarted``/``UserSpeechEnded``).
    gap_tolerance_s : float
        Input frames arriving up to this much later than the end of what is written are appended
        contiguously (a sender running late, as ``send_audio(pace=True)`` may by up to 0.5 s before
        it restarts its clock); later ones are placed at their time, after digital silence (the
        microphone was off).
    metadata : dict, optional
        Anything JSON-serialisable to keep in ``meta.json`` under ``"user"``.

    Notes
    -----
    Events published before :meth:`attach` (``SessionStarted`` is published while
    ``start_streaming`` runs) are not in ``events.jsonl``; the session's settings are in
    ``meta.json``. Callbacks run on the session's event loop; the recorder is not thread-safe.

    Examples
    --------
    >>> async def talk(provider, question):                      # doctest: +SKIP
    ...     async with await provider.start_streaming() as session:
    ...         with SessionRecorder("rec-001", session) as recorder:
    ...             await session.send_audio(question, pace=True)
    ...     return Recording.load("rec-001")
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        session: Recordable | None = None,
        *,
        input_rate: int | None = None,
        output_rate: int | None = None,
        detector: EnergySpeechDetector | None = None,
        gap_tolerance_s: float = 0.5,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        config = getattr(session, "config", None)
        self.input_rate: int = input_rate or int(getattr(config, "input_sample_rate", 16000))
        self.output_rate: int = output_rate or int(getattr(config, "output_sample_rate", 24000))
        self.detector = detector or EnergySpeechDetector()
        self.gap_tolerance_s = float(gap_tolerance_s)
        self.user_metadata = dict(metadata or {})
        self.t0 = time.monotonic()
        self.started_at = _dt.datetime.now(_dt.UTC).isoformat()
        self._input = WavWriter(self.folder / INPUT_WAV, self.input_rate)
        self._player = _Player(WavWriter(self.folder / OUTPUT_WAV, self.output_rate))
        self._events = open(self.folder / EVENTS_JSONL, "w", encoding="utf-8")  # closed by stop()
        # The listeners run on the session's loop; the flusher thread below pushes what they wrote to
        # the OS. One lock makes the two never touch a file at the same time (uncontended: ~0.1 µs).
        self._lock = threading.RLock()
        self._dirty = False
        self._input_frames = 0
        self.flush_error: OSError | None = None
        self._input_written = 0
        self._removers: list[Callable[[], None]] = []
        self._session_info: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.stopped = False
        self._write_meta(final=False)
        self._line("RecordingStarted", self.t0, input_rate=self.input_rate, output_rate=self.output_rate)
        self._flush_now()
        self._stop_flushing = threading.Event()
        # A daemon thread, not a loop timer: the recorder may be fed without a running loop (from a
        # file, from another thread) and a loop blocked by a long synchronous call must not stop the
        # flushes. It holds the recorder only weakly, so a recorder dropped without stop() is still
        # collected, and it ends at stop() (or when the recorder is gone).
        self._flusher = threading.Thread(
            target=_flush_periodically,
            args=(weakref.ref(self), self._stop_flushing),
            name=f"nova-nb-recorder-flush-{self.folder.name}",
            daemon=True,
        )
        self._flusher.start()
        if session is not None:
            self.attach(session)

    # -- attaching -----------------------------------------------------------------------------

    def attach(self, session: Recordable) -> Self:
        """Start receiving the session's events and input frames. Returns the recorder."""
        if self.stopped:
            raise RecordingError("this recorder is stopped: make a new SessionRecorder")
        self._session_info = _session_settings(session)
        self._removers.append(session.add_listener(self.on_event))
        self._removers.append(session.add_input_listener(self.on_input))
        self._line("RecorderAttached", time.monotonic(), session=self._session_info)
        self._write_meta(final=False)
        return self

    def detach(self) -> None:
        """Stop receiving from the session (the files stay open until :meth:`stop`)."""
        for remove in self._removers:
            remove()
        self._removers.clear()

    # -- what the listeners receive -------------------------------------------------------------

    def on_input(self, frame: bytes, timestamp: float, sample_rate: int) -> None:
        """An input frame as sent (``add_input_listener`` callback)."""
        if self.stopped:
            return
        with self._lock:
            self._on_input(frame, timestamp, sample_rate)

    def _on_input(self, frame: bytes, timestamp: float, sample_rate: int) -> None:
        pcm = np.frombuffer(frame, dtype="<i2")
        if sample_rate != self.input_rate:
            raise RecordingError(
                f"input frames at {sample_rate} Hz cannot go into a {self.input_rate} Hz recording: "
                "pass input_rate= to SessionRecorder"
            )
        at = round(self._t(timestamp) * self.input_rate)
        # The first frame lands at its time (sample i of input.wav is at i / rate); later ones only
        # after a gap longer than the tolerance (docs/RECORDING.md §3).
        tolerance = self.gap_tolerance_s * self.input_rate if self._input_frames else 0
        if at - self._input_written > tolerance:
            self._input.write(np.zeros(at - self._input_written, dtype=np.int16))
            self._input_written = at
        sample = self._input_written
        self._input.write(pcm)
        self._input_written += pcm.size
        self._input_frames += 1
        level = rms_dbfs(pcm)
        duration = pcm.size / self.input_rate
        self._line(
            "InputAudio",
            timestamp,
            sample=sample,
            n_samples=int(pcm.size),
            sample_rate=sample_rate,
            rms_dbfs=round(level, 2),
        )
        for kind, t_found in self.detector.push_level(level, timestamp, duration):
            self._line(kind, t_found, source="recorder")
        self._tick(timestamp)

    def on_event(self, event: ev.Event) -> None:
        """A typed session event (``add_listener`` callback)."""
        if self.stopped:
            return
        with self._lock:
            self._on_event(event)

    def _on_event(self, event: ev.Event) -> None:
        fields = _event_fields(event)
        if isinstance(event, ev.AudioOutput):
            pcm = np.frombuffer(event.audio, dtype="<i2")
            if event.sample_rate != self.output_rate:
                raise RecordingError(
                    f"output audio at {event.sample_rate} Hz cannot go into a {self.output_rate} Hz "
                    "recording: pass output_rate= to SessionRecorder"
                )
            self._player.advance(self._t(event.timestamp))
            start = self._player.schedule(pcm, self._t(event.timestamp), event.content_id)
            fields.update(n_samples=int(pcm.size), duration_s=round(event.duration_s, 6), sample=start)
        self._line(event.kind, event.timestamp, **fields)
        if isinstance(event, ev.Interruption):
            played, dropped = self._player.flush(self._t(event.timestamp), event.content_id)
            self._line(
                "PlayerFlushed",
                event.timestamp,
                source="recorder",
                content_id=event.content_id,
                played_s=round(played / self.output_rate, 6),
                dropped_s=round(dropped / self.output_rate, 6),
            )
        self._tick(event.timestamp)

    def played_s(self, content_id: str, t_monotonic: float | None = None) -> float:
        """Seconds of reply ``content_id`` the simulated player has played by ``t_monotonic`` (now)."""
        with self._lock:
            if not self.stopped:
                now = time.monotonic() if t_monotonic is None else t_monotonic
                self._player.advance(self._t(now))
                self._dirty = True
            return self._player.played.get(content_id, 0) / self.output_rate

    def mark(self, kind: str, t_monotonic: float | None = None, **fields: Any) -> None:
        """Add a line of your own (an annotation, a client-side moment) to ``events.jsonl``.

        Parameters
        ----------
        kind : str
            The line's ``kind``; use a name that no session event has.
        t_monotonic : float, optional
            When it happened (``time.monotonic()``); now by default.
        **fields
            JSON-serialisable values stored with it (``source`` is set to ``"user"``).
        """
        if self.stopped:
            raise RecordingError("this recorder is stopped")
        now = time.monotonic() if t_monotonic is None else t_monotonic
        with self._lock:
            self._line(kind, now, source="user", **fields)
            self._tick(now)

    # -- writing -------------------------------------------------------------------------------

    def _t(self, t_monotonic: float) -> float:
        """The recording clock of a moment, as written on its line: audio is placed by this value."""
        return round(t_monotonic - self.t0, 6)

    def _line(self, kind: str, t_monotonic: float, **fields: Any) -> None:
        record = {"kind": kind, "t": self._t(t_monotonic), "t_monotonic": t_monotonic}
        record.update(fields)
        self._events.write(json.dumps(_jsonable(record), separators=(",", ":")) + "\n")
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self._dirty = True

    def _tick(self, t_monotonic: float) -> None:
        self._player.advance(self._t(t_monotonic))

    def _flush_now(self) -> None:
        """Push everything written so far to the OS: events.jsonl, and both WAVs with fresh headers."""
        with self._lock:
            if self.stopped or not self._dirty:
                return
            self._dirty = False
            self._events.flush()
            self._input.flush()
            self._player.writer.flush()

    def _write_meta(self, *, final: bool) -> None:
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "complete": final,
            "t0_monotonic": self.t0,
            "started_at_utc": self.started_at,
            "duration_s": round(time.monotonic() - self.t0, 6),
            "input": {
                "file": INPUT_WAV,
                "sample_rate": self.input_rate,
                "samples": self._input_written,
                "layout": "sent",
                "gap_tolerance_s": self.gap_tolerance_s,
            },
            "output": {
                "file": OUTPUT_WAV,
                "sample_rate": self.output_rate,
                "samples": self._player.written,
                "layout": "played",
            },
            "events": {"file": EVENTS_JSONL, "counts": dict(self.counts)},
            "speech_detector": self.detector.settings(),
            "session": self._session_info,
            "user": _jsonable(self.user_metadata),
        }
        tmp = self.folder / (META_JSON + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.folder / META_JSON)

    def stop(self) -> Path:
        """Detach, play out the rest of the output, close the files and finish ``meta.json``.

        Returns the folder. Calling it again does nothing.
        """
        if self.stopped:
            return self.folder
        self.detach()
        self._stop_flushing.set()
        with self._lock:
            now = time.monotonic()
            # The player plays out what it received: the session ended, the speaker did not.
            self._player.advance(math.inf)
            self._line("RecordingStopped", now, source="recorder")
            self.stopped = True
            self._events.close()
            self._input.close()
            self._player.writer.close()
            self._write_meta(final=True)
        if self._flusher is not threading.current_thread():
            self._flusher.join(timeout=2 * _FLUSH_EVERY_S)
        return self.folder

    close = stop

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self.stopped else "recording"
        return f"<SessionRecorder {str(self.folder)!r} {state}, {sum(self.counts.values())} lines>"


def _flush_periodically(recorder: weakref.ref[SessionRecorder], stop: threading.Event) -> None:
    """The body of a recorder's flusher thread: flush every _FLUSH_EVERY_S until stopped."""
    while not stop.wait(_FLUSH_EVERY_S):
        rec = recorder()
        if rec is None:
            return
        try:
            rec._flush_now()
        except OSError as exc:
            # A full disk, say: the next write on the session's loop meets the same error and raises it
            # there, where it belongs. Keep it for anyone who asks; a thread must not print a traceback.
            rec.flush_error = exc
            return
        del rec


def _wav_layout(path: Path, rate: int) -> tuple[int, int]:
    """Check a recording's WAV file against meta.json; return (data offset, number of samples).

    Every WAV of a recording is 16-bit PCM mono at the rate meta.json gives (§1 of RECORDING.md):
    anything else would load with a wrong time axis, so it is an error naming both values. The data
    chunk is the file's last (WavWriter writes it so) and runs to the end of the file: its size in the
    header may be stale after a crash (headers are rewritten every second of audio), the file is not.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                raise RecordingError(f"{path} is not a WAV file (no RIFF/WAVE header)")
            fmt: bytes | None = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    raise RecordingError(f"{path} has no data chunk: it is not a WAV file written by nova_nb")
                name, length = chunk[:4], int.from_bytes(chunk[4:8], "little")
                if name == b"data":
                    break
                body = f.read(length + (length & 1))
                if name == b"fmt ":
                    fmt = body[:16]
            offset = f.tell()
    except FileNotFoundError:
        raise RecordingError(f"the recording has no {path.name} ({path})") from None
    if fmt is None or len(fmt) < 16:
        raise RecordingError(f"{path} has no fmt chunk before its data: it is not a valid WAV file")
    encoding = int.from_bytes(fmt[0:2], "little")
    channels = int.from_bytes(fmt[2:4], "little")
    file_rate = int.from_bytes(fmt[4:8], "little")
    bits = int.from_bytes(fmt[14:16], "little")
    if file_rate != rate:
        raise RecordingError(
            f"{path} is at {file_rate} Hz but meta.json says {rate} Hz: its time axis would be wrong; "
            "a recording's WAV files must keep the rate they were written at"
        )
    if channels != 1:
        raise RecordingError(f"{path} has {channels} channels; a recording's WAV files are mono (1 channel)")
    if encoding not in (1, 0xFFFE) or bits != 16:
        raise RecordingError(
            f"{path} holds {bits}-bit samples (format tag {encoding}); a recording's WAV files are "
            "16-bit integer PCM (2 bytes per sample)"
        )
    return offset, (size - offset) // 2


def _read_wav(path: Path, rate: int, *, mmap: bool) -> npt.NDArray[np.int16]:
    """The samples of a recording's WAV file, memory-mapped (hour-long files stay on disk) or read."""
    offset, n = _wav_layout(path, rate)
    if n == 0:
        return np.zeros(0, dtype=np.int16)
    if mmap:
        return np.memmap(path, dtype="<i2", mode="r", offset=offset, shape=(n,))
    return np.fromfile(path, dtype="<i2", count=n, offset=offset).astype(np.int16, copy=False)


@dataclass
class Recording:
    """A recording loaded from its folder. Made by :meth:`load`.

    Attributes
    ----------
    folder : pathlib.Path
    meta : dict
        ``meta.json``.
    events : list of dict
        Every line of ``events.jsonl`` except ``InputAudio``, sorted by ``t`` (stable).
    input_frames : numpy.ndarray
        One row per ``InputAudio`` line: structured array with fields ``t``, ``sample``,
        ``n_samples``, ``rms_dbfs``.
    input, output : numpy.ndarray
        int16 samples of ``input.wav`` and ``output.wav`` (memory-mapped when possible).
    input_rate, output_rate : int
    torn_lines : int
        Lines of ``events.jsonl`` dropped because they were torn (0 or 1: only the last line can be).
    """

    folder: Path
    meta: dict[str, Any]
    events: list[dict[str, Any]]
    input_frames: npt.NDArray[Any]
    input: npt.NDArray[np.int16]
    output: npt.NDArray[np.int16]
    input_rate: int
    output_rate: int
    torn_lines: int = 0

    @classmethod
    def load(cls, folder: str | os.PathLike[str], *, mmap: bool = True) -> Recording:
        """Load a recording folder.

        Parameters
        ----------
        folder : str or os.PathLike
            A folder written by :class:`SessionRecorder` (complete or not: a recording cut short
            by a crash loads up to its last flush).
        mmap : bool
            Memory-map the WAV files instead of reading them into memory.

        Raises
        ------
        RecordingError
            If ``meta.json`` or ``events.jsonl`` is missing or not of this format, a line of
            ``events.jsonl`` other than the last is not a JSON object, or a WAV file's sample rate,
            channels or sample width disagrees with ``meta.json`` (16-bit mono at its rate).

        Warns
        -----
        RecordingWarning
            When the last line of ``events.jsonl`` is torn (a crash in the middle of writing it): it
            is dropped and counted in :attr:`torn_lines`.
        """
        path = Path(folder)
        try:
            meta = json.loads((path / META_JSON).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RecordingError(f"{path} is not a recording: it has no {META_JSON}") from None
        if meta.get("format") != FORMAT:
            raise RecordingError(f"{path / META_JSON} is not a {FORMAT} file (format={meta.get('format')!r})")
        if meta.get("version", 0) > FORMAT_VERSION:
            raise RecordingError(
                f"{path} is format version {meta['version']}; this nova_nb reads up to {FORMAT_VERSION}"
            )
        events, frames, torn = _read_events(path / EVENTS_JSONL)
        in_rate = int(meta["input"]["sample_rate"])
        out_rate = int(meta["output"]["sample_rate"])
        inp = _read_wav(path / meta["input"].get("file", INPUT_WAV), in_rate, mmap=mmap)
        out = _read_wav(path / meta["output"].get("file", OUTPUT_WAV), out_rate, mmap=mmap)
        return cls(path, meta, events, frames, inp, out, in_rate, out_rate, torn)

    @property
    def duration_s(self) -> float:
        """Seconds from the start of the recording to its last line or audio sample."""
        last = max((e["t"] for e in self.events), default=0.0)
        return max(last, self.input.size / self.input_rate, self.output.size / self.output_rate)

    def of(self, *kinds: str) -> list[dict[str, Any]]:
        """The events of the given kinds, in time order."""
        wanted = set(kinds)
        return [e for e in self.events if e["kind"] in wanted]

    def iter_kind(self, kind: str) -> Iterator[dict[str, Any]]:
        return (e for e in self.events if e["kind"] == kind)

    def user_audio(self) -> npt.NDArray[np.int16]:
        """The user's audio as sent, in order, without the silence added for gaps.

        This is what :func:`~nova_nb.analysis.replay.replay` sends to a new session.
        """
        f = self.input_frames
        if f.size == 0:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(
            [np.asarray(self.input[s : s + n]) for s, n in zip(f["sample"], f["n_samples"], strict=False)]
        )

    def __repr__(self) -> str:
        return (
            f"<Recording {str(self.folder)!r} {self.duration_s:.1f} s, {len(self.events)} events, "
            f"{self.input_frames.size} input frames>"
        )


INPUT_FRAME_DTYPE = np.dtype([("t", "f8"), ("sample", "i8"), ("n_samples", "i8"), ("rms_dbfs", "f4")])


def read_events(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], npt.NDArray[Any]]:
    """Read ``events.jsonl``: the events (sorted by ``t``) and the input frames (a structured array).

    Raises
    ------
    RecordingError
        If the file is missing, or a line other than the last is not a JSON object with ``kind`` and
        ``t`` (the recording is damaged; its line number is given).

    Warns
    -----
    RecordingWarning
        If the last line is torn (a crash in the middle of writing it); it is dropped.
    """
    events, frames, _ = _read_events(path)
    return events, frames


def _read_events(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], npt.NDArray[Any], int]:
    """:func:`read_events`, and how many torn last lines were dropped (0 or 1)."""
    events: list[dict[str, Any]] = []
    frames: list[tuple[float, int, int, float]] = []
    try:
        f = open(path, encoding="utf-8", newline="\n")
    except FileNotFoundError:
        raise RecordingError(f"the recording has no {Path(path).name} ({path})") from None
    torn = 0
    with f:
        # One line of look-ahead: only the last line may be torn.
        number, line = 0, f.readline()
        while line:
            number += 1
            following = f.readline()
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
                    raise ValueError("not a JSON object with a kind")
                if not isinstance(record.get("t"), int | float):
                    raise ValueError("no number t")
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                if following:
                    raise RecordingError(
                        f"{path}, line {number}, is not a recording line ({exc}): only the last line "
                        "may be damaged (by a crash while it was written); this recording is corrupt"
                    ) from None
                warnings.warn(
                    f"{path}: the last line ({number}) is torn, a crash while it was written; dropped",
                    RecordingWarning,
                    stacklevel=3,
                )
                torn += 1
                break
            if record["kind"] == "InputAudio":
                frames.append(
                    (record["t"], record["sample"], record["n_samples"], record.get("rms_dbfs", 0.0))
                )
            else:
                events.append(record)
            line = following
    events.sort(key=lambda e: e["t"])
    return events, np.array(frames, dtype=INPUT_FRAME_DTYPE), torn
