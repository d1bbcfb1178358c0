"""What an evaluation runs: items (an utterance or a text to synthesise, with optional expected text).

:func:`load_items` reads a folder of audio files (expected text from a ``<name>.txt`` beside each), a
CSV file or a JSON Lines file (one object per line); :func:`item_audio` turns an item into the int16
samples a session takes, saying what it had to convert. Problems that belong to one item (a missing or
unreadable file, an empty expected text, a bad offset) never stop the others: they travel with the item
as :attr:`Item.problem` and become that item's error in the results.
"""

from __future__ import annotations

import csv
import json
import math
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ...audio import load_audio, read_wav, to_pcm16_mono
from ...errors import AudioFormatError, ConfigError, one_of

__all__ = [
    "AUDIO_SUFFIXES",
    "ITEM_FIELDS",
    "AudioNote",
    "Item",
    "ItemError",
    "Synthesize",
    "item_audio",
    "load_items",
]

#: Files of a folder that are utterances (anything :func:`nova_nb.audio.load_audio` decodes).
AUDIO_SUFFIXES = (".wav", ".wave", ".flac", ".mp3", ".ogg", ".opus", ".webm", ".m4a")
#: ``synthesize(text, voice) -> int16 samples at 16 kHz`` (e.g. the emulator's ``make_utterance``):
#: how items given as text become speech. A top-level function, so process pools can pickle it.
Synthesize = Callable[[str, str], npt.NDArray[np.int16]]
#: The rate a ``synthesize`` callable returns (``make_utterance``'s default).
SYNTH_RATE = 16000


class ItemError(Exception):
    """One item cannot be run as given (its own error in the results; the run goes on).

    ``kind`` says where it went wrong: ``"input"`` (the item's file or fields), ``"config"`` (a setting
    the provider rejects), ``"stream"`` (the service failed), ``"timeout"``, ``"crash"`` (a bug).
    """

    def __init__(self, message: str, kind: str = "input") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Item:
    """One utterance to evaluate.

    Exactly one of ``audio`` (a file) and ``text`` (words to synthesise) is given. ``expected`` is
    what the user said, for the word error rate of the USER transcript; it defaults to ``text`` for a
    synthesised item, and ``None`` means no WER. ``barge_in_offset_s`` with ``barge_in_audio`` or
    ``barge_in_text`` asks for a barge-in: that speech, started that long after the reply's first audio.
    ``speaker`` is the voice that synthesises ``text`` (not the model's voice: that is a setting).
    """

    id: str
    audio: str | None = None
    text: str | None = None
    expected: str | None = None
    barge_in_offset_s: float | None = None
    barge_in_audio: str | None = None
    barge_in_text: str | None = None
    speaker: str = "matthew"
    #: Why this item cannot run (found while loading it); it becomes the item's error.
    problem: str | None = None

    @property
    def reference(self) -> str | None:
        """The expected USER transcript: ``expected``, else the synthesised ``text``, else None."""
        if self.expected is not None:
            return self.expected
        return self.text

    @property
    def wants_barge_in(self) -> bool:
        return self.barge_in_offset_s is not None

    def check(self) -> None:
        """Raise :class:`ItemError` if the item cannot run as given."""
        if self.problem:
            raise ItemError(self.problem)
        if (self.audio is None) == (self.text is None):
            raise ItemError(
                f"item {self.id!r}: give either audio (a file) or text (words to synthesise), "
                f"not {'both' if self.audio is not None else 'neither'}"
            )
        if self.text is not None and not self.text.strip():
            raise ItemError(f"item {self.id!r}: the text to synthesise is empty")
        if self.expected is not None and not self.expected.strip():
            raise ItemError(
                f"item {self.id!r}: the expected text is empty, so its word error rate is undefined "
                "(no reference words); give the words spoken, or leave expected out for no WER"
            )
        if self.barge_in_offset_s is not None:
            if not math.isfinite(self.barge_in_offset_s) or self.barge_in_offset_s < 0:
                raise ItemError(
                    f"item {self.id!r}: barge_in_offset_s must be seconds ≥ 0, got {self.barge_in_offset_s}"
                )
            if (self.barge_in_audio is None) == (self.barge_in_text is None):
                raise ItemError(
                    f"item {self.id!r}: a barge-in needs either barge_in_audio or barge_in_text "
                    f"(got {'both' if self.barge_in_audio is not None else 'neither'})"
                )
        elif self.barge_in_audio is not None or self.barge_in_text is not None:
            raise ItemError(f"item {self.id!r}: barge_in_audio/barge_in_text need barge_in_offset_s")


#: Fields an item may have in a CSV header or a JSON object.
ITEM_FIELDS = tuple(f.name for f in fields(Item) if f.name != "problem")
_PATH_FIELDS = ("audio", "barge_in_audio")


@dataclass(frozen=True)
class AudioNote:
    """What loading an item's audio had to do (``None`` fields: nothing)."""

    source_rate: int | None
    source_channels: int | None
    target_rate: int
    seconds: float

    def text(self) -> str | None:
        """A sentence for the results, or None when the file was used as it was."""
        parts = []
        if self.source_rate is not None and self.source_rate != self.target_rate:
            parts.append(f"resampled from {self.source_rate} Hz to {self.target_rate} Hz")
        if self.source_channels is not None and self.source_channels > 1:
            parts.append(f"{self.source_channels} channels mixed down to mono")
        return "; ".join(parts) or None


def _load_file(path: str, rate: int) -> tuple[npt.NDArray[np.int16], AudioNote]:
    p = Path(path)
    if not p.exists():
        raise ItemError(f"audio file {path!r} does not exist")
    if not p.is_file():
        raise ItemError(f"audio file {path!r} is not a file")
    try:
        if p.suffix.lower() in (".wav", ".wave"):
            # Read it ourselves first to say what was converted (rate, channels); load_audio's
            # converter (soxr resampling, mean of the channels) does the converting.
            raw, source_rate = read_wav(p)
            channels = 1 if raw.ndim == 1 else int(raw.shape[1])
            pcm = to_pcm16_mono(raw, sample_rate=source_rate, target_rate=rate)
            note = AudioNote(source_rate, channels, rate, pcm.size / rate)
        else:
            pcm = load_audio(p, target_rate=rate)
            note = AudioNote(None, None, rate, pcm.size / rate)
    except (AudioFormatError, ConfigError, OSError, EOFError, ValueError) as exc:
        raise ItemError(f"cannot read audio file {path!r}: {exc}") from None
    if pcm.size == 0:
        raise ItemError(f"audio file {path!r} holds no samples")
    return pcm, note


def _synthesised(
    text: str, speaker: str, synthesize: Synthesize | None, rate: int, cache: Path | None
) -> npt.NDArray[np.int16]:
    if synthesize is None:
        raise ItemError(
            "this item is text to synthesise, but no synthesize= callable was given (e.g. "
            "nova_nb.emulator.engine.testaudio.make_utterance; `nova-nb eval` passes it)"
        )
    if cache is not None and cache.exists():
        pcm, _ = _load_file(str(cache), rate)
        return pcm
    try:
        spoken = np.asarray(synthesize(text, speaker))
    except Exception as exc:
        raise ItemError(f"synthesising {text!r} with voice {speaker!r} failed: {exc}") from None
    if spoken.dtype != np.int16 or spoken.ndim != 1 or spoken.size == 0:
        raise ItemError(
            f"synthesize() must return int16 mono samples at {SYNTH_RATE} Hz, got dtype {spoken.dtype}, "
            f"shape {spoken.shape}"
        )
    if cache is not None:
        # Kept so every setting (and a rerun) hears the same samples; written whole, then renamed,
        # so a concurrent job or a crash never leaves half a file.
        from ...audio import write_wav

        cache.parent.mkdir(parents=True, exist_ok=True)
        # Unique per call: two settings of one item may synthesise it at the same moment, in threads
        # of one process (a pid-only name made one of them rename a file the other had moved).
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        write_wav(tmp, spoken, SYNTH_RATE)
        tmp.replace(cache)
    return to_pcm16_mono(spoken, sample_rate=SYNTH_RATE, target_rate=rate)


def item_audio(
    item: Item,
    rate: int,
    *,
    synthesize: Synthesize | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16] | None, str | None]:
    """The item's question and barge-in speech as int16 mono at ``rate``, and a note on conversion.

    Raises
    ------
    ItemError
        The item is invalid (:meth:`Item.check`), its file is missing, unreadable or empty, or it is
        text and no ``synthesize`` was given.
    """
    item.check()
    cache = Path(cache_dir) if cache_dir is not None else None
    note: str | None = None
    if item.audio is not None:
        question, info = _load_file(item.audio, rate)
        note = info.text()
    else:
        assert item.text is not None
        question = _synthesised(
            item.text, item.speaker, synthesize, rate, cache / f"{_safe(item.id)}.wav" if cache else None
        )
    interjection = None
    if item.barge_in_audio is not None:
        interjection, info = _load_file(item.barge_in_audio, rate)
        if info.text():
            note = "; ".join(n for n in (note, f"barge-in audio {info.text()}") if n)
    elif item.barge_in_text is not None:
        name = f"{_safe(item.id)}.barge_in.wav"
        interjection = _synthesised(
            item.barge_in_text, item.speaker, synthesize, rate, cache / name if cache else None
        )
    return question, interjection, note


def _safe(name: str) -> str:
    """A file name for an id: letters, digits, ``-_.``; anything else becomes ``_``."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip(".") or "_"


# -- loading --------------------------------------------------------------------------------------


def load_items(source: str | os.PathLike[str] | Iterable[Item | Mapping[str, Any]]) -> list[Item]:
    """Read the items of an evaluation.

    Parameters
    ----------
    source : path or iterable
        * a **folder**: every audio file in it and its subfolders (:data:`AUDIO_SUFFIXES`) is an item,
          its id the path relative to the folder without the suffix; a ``<name>.txt`` beside it holds
          the expected text;
        * a **.csv** file with a header of :data:`ITEM_FIELDS` (``audio`` or ``text`` per row; ``id``
          defaults to ``row-N``); an empty ``expected`` cell is an empty expected text (an error of
          that row): leave the column out for no WER;
        * a **.jsonl** file, one JSON object per line with those fields (``"expected": null`` or no
          key: no WER); a line that is not an object is that line's error;
        * items or dicts with those fields.

        Relative paths in a file are relative to the file's folder.

    Returns
    -------
    list of Item
        In the order given. Per-item problems are in :attr:`Item.problem`, not raised.

    Raises
    ------
    ConfigError
        If the source does not exist, is of another kind, has unknown columns, or repeats an id.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise ConfigError(f"items source {str(path)!r} does not exist (a folder, .csv or .jsonl file)")
        if path.is_dir():
            items = _from_folder(path)
        elif path.suffix.lower() == ".csv":
            items = _from_csv(path)
        elif path.suffix.lower() in (".jsonl", ".ndjson"):
            items = _from_jsonl(path)
        else:
            raise ConfigError(
                f"items source {str(path)!r}: use a folder of audio files, a .csv or a .jsonl file"
            )
    else:
        items = [
            it if isinstance(it, Item) else _from_mapping(dict(it), f"item-{n}", None)
            for n, it in enumerate(source, 1)
        ]
    seen: dict[str, int] = {}
    for n, it in enumerate(items, 1):
        if it.id in seen:
            raise ConfigError(
                f"item id {it.id!r} is used twice (items {seen[it.id]} and {n}): ids key the results, "
                "so each must be unique"
            )
        seen[it.id] = n
    return items


def _from_folder(folder: Path) -> list[Item]:
    items = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        item_id = path.relative_to(folder).with_suffix("").as_posix()
        sidecar = path.with_suffix(".txt")
        expected = problem = None
        if sidecar.exists():
            try:
                expected = sidecar.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                problem = f"cannot read the expected text {str(sidecar)!r}: {exc}"
        items.append(Item(item_id, audio=str(path), expected=expected, problem=problem))
    if not items:
        raise ConfigError(f"folder {str(folder)!r} holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return items


def _from_csv(path: Path) -> list[Item]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        unknown = [h for h in header if h not in ITEM_FIELDS]
        if unknown:
            raise ConfigError(
                f"{path}: unknown column(s) {one_of(unknown)}; columns are {one_of(ITEM_FIELDS)}"
            )
        if "audio" not in header and "text" not in header:
            raise ConfigError(f"{path}: needs an 'audio' or a 'text' column")
        items = []
        for n, row in enumerate(reader, 1):
            values = {k.strip(): v for k, v in row.items() if k is not None}
            # An empty cell is "not given", except for expected (see load_items).
            data: dict[str, Any] = {k: v for k, v in values.items() if v != "" or k == "expected"}
            items.append(_from_mapping(data, f"row-{n}", path.parent))
    return items


def _from_jsonl(path: Path) -> list[Item]:
    items = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise ValueError(f"a JSON {type(data).__name__}, not an object")
            except ValueError as exc:
                items.append(Item(f"line-{n}", problem=f"{path}, line {n}, is not a JSON object ({exc})"))
                continue
            items.append(_from_mapping(data, f"line-{n}", path.parent))
    if not items:
        raise ConfigError(f"{path} holds no items")
    return items


def _from_mapping(data: dict[str, Any], default_id: str, base: Path | None) -> Item:
    item_id = str(data.get("id") or default_id)
    unknown = [k for k in data if k not in ITEM_FIELDS]
    if unknown:
        return Item(
            item_id,
            problem=f"item {item_id!r}: unknown field(s) {one_of(unknown)}; fields are {one_of(ITEM_FIELDS)}",
        )
    values: dict[str, Any] = {"id": item_id}
    for key in ("audio", "text", "expected", "barge_in_audio", "barge_in_text", "speaker"):
        v = data.get(key)
        if v is None:
            continue
        if not isinstance(v, str):
            return Item(item_id, problem=f"item {item_id!r}: {key} must be a string, got {v!r}")
        if key in _PATH_FIELDS and base is not None and not os.path.isabs(v):
            v = str(base / v)
        values[key] = v
    offset = data.get("barge_in_offset_s")
    if offset is not None:
        try:
            values["barge_in_offset_s"] = float(offset)
        except (TypeError, ValueError):
            return Item(
                item_id, problem=f"item {item_id!r}: barge_in_offset_s must be seconds, got {offset!r}"
            )
    item = Item(**values)
    try:
        item.check()
    except ItemError as exc:
        return replace(item, problem=str(exc))
    return item


def as_items(items: str | os.PathLike[str] | Sequence[Item | Mapping[str, Any]]) -> list[Item]:
    """``items`` as a list of :class:`Item` (a path or a sequence: :func:`load_items`)."""
    return load_items(items)
