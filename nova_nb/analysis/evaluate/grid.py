"""The settings an evaluation sweeps: a grid of provider options, expanded to one :class:`Setting` each.

A setting is a provider *name* and *options* (plain values), never a provider object, so that a job
can be pickled to a worker process (or a Dask/Ray worker) which builds its own provider there.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError

__all__ = ["Setting", "expand_grid", "parse_grid_values"]

#: Grid names with a meaning of their own; every other name is a ``s2s.new_provider`` option
#: (``latency_target``, ``frame_ms``, ``model_id``, ``language``, ``engine``, ...).
#: ``voice`` is the model's voice (Config's ``voice_id``); ``system_prompt`` goes into the
#: conversation context.
ALIASES = {"voice_id": "voice", "prompt": "system_prompt", "frame_size_ms": "frame_ms"}


def _describe(value: Any) -> Any:
    """A JSON-able stand-in for a value in a setting's key (a responder function by its name)."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_describe(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _describe(v) for k, v in value.items()}
    if callable(value):
        return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', repr(value))}"
    return repr(value)


@dataclass(frozen=True)
class Setting:
    """One point of the grid: a provider name and its options (sorted by name)."""

    provider: str
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, provider: str = "local", **options: Any) -> Setting:
        normal = {ALIASES.get(k, k): v for k, v in options.items()}
        return cls(provider, tuple(sorted(normal.items())))

    @property
    def as_dict(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def described(self) -> dict[str, Any]:
        """The setting as JSON-able values: what results and reports show."""
        return {"provider": self.provider, **{k: _describe(v) for k, v in self.options}}

    @property
    def key(self) -> str:
        """Stable text naming the setting: the results are keyed by (item id, this)."""
        return json.dumps(self.described, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @property
    def label(self) -> str:
        """Short, readable: ``local · voice=matthew · latency_target=low`` (long prompts cut)."""
        parts = [self.provider]
        for k, v in self.described.items():
            if k == "provider":
                continue
            text = str(v)
            parts.append(f"{k}={text if len(text) <= 24 else text[:21] + '…'}")
        return " · ".join(parts)

    @property
    def slug(self) -> str:
        """A folder name: readable part plus a hash of the key (unique per setting)."""
        digest = hashlib.sha1(self.key.encode()).hexdigest()[:8]
        readable = "_".join(
            str(v) for k, v in self.described.items() if k != "system_prompt" and isinstance(v, str | int)
        )
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in readable)[:60]
        return f"{safe}-{digest}"

    def provider_options(self) -> dict[str, Any]:
        """Options for ``s2s.new_provider``: all but ``system_prompt``; ``voice`` as ``voice_id``."""
        out = {("voice_id" if k == "voice" else k): v for k, v in self.options if k != "system_prompt"}
        return out

    @property
    def system_prompt(self) -> str | None:
        value = self.as_dict.get("system_prompt")
        return None if value is None else str(value)


def expand_grid(
    grid: Mapping[str, Any] | Sequence[Setting] | None = None,
    *,
    provider: str = "local",
    fixed: Mapping[str, Any] | None = None,
) -> list[Setting]:
    """Every combination of the grid's values, with the ``fixed`` options added to each.

    Parameters
    ----------
    grid : mapping or sequence of Setting, optional
        ``{"voice": ["matthew", "tiffany"], "latency_target": ["low", "high"]}``: a name and its
        values (a single value counts as one). ``"provider"`` may be a dimension too. Settings given
        as a sequence are used as they are.
    provider : str
        The provider when the grid does not name one.
    fixed : mapping, optional
        Options every setting gets (e.g. ``{"engine": "scripted"}``); the grid wins on a clash.

    Returns
    -------
    list of Setting
        In the grid's order (the last name varies fastest).

    Examples
    --------
    >>> [s.label for s in expand_grid({"latency_target": ["low", "high"]}, fixed={"engine": "scripted"})]
    ['local · engine=scripted · latency_target=low', 'local · engine=scripted · latency_target=high']
    """
    if grid is not None and not isinstance(grid, Mapping):
        settings = list(grid)
        if not all(isinstance(s, Setting) for s in settings):
            raise ConfigError("grid must be a mapping of option → values, or a sequence of Setting")
        return settings
    dims: list[tuple[str, list[Any]]] = []
    for name, values in (grid or {}).items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"grid names must be option names (strings), got {name!r}")
        listed = list(values) if isinstance(values, list | tuple) else [values]
        if not listed:
            raise ConfigError(f"grid {name!r} has no values")
        dims.append((name, listed))
    out: list[Setting] = []
    seen: set[str] = set()
    for combo in itertools.product(*(v for _, v in dims)):
        options = dict(fixed or {})
        options.update(zip((n for n, _ in dims), combo, strict=True))
        name = options.pop("provider", provider)
        if not isinstance(name, str):
            raise ConfigError(f"provider must be a provider name such as 'local', got {name!r}")
        setting = Setting.of(name, **options)
        if setting.key not in seen:  # "low,low" on the command line is one setting
            seen.add(setting.key)
            out.append(setting)
    return out


def parse_grid_values(text: str) -> tuple[str, list[Any]]:
    """``NAME=V1,V2`` (or ``NAME=["a, b", "c"]``, a JSON list) → (name, values).

    Each value is read as JSON when it parses (``32`` → 32, ``true`` → True), else kept as text.
    """
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ConfigError(f"grid {text!r}: use NAME=VALUE[,VALUE...], e.g. voice=matthew,tiffany")
    rest = rest.strip()
    if rest.startswith("["):
        try:
            values = json.loads(rest)
        except ValueError as exc:
            raise ConfigError(f"grid {text!r}: the JSON list does not parse ({exc})") from None
        if not isinstance(values, list):
            raise ConfigError(f"grid {text!r}: a value starting with '[' must be a JSON list")
        return name, values
    return name, [_scalar(v.strip()) for v in rest.split(",")]


def _scalar(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float | bool) and not isinstance(value, str) else text
