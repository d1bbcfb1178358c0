"""Cost from token usage, only from a price table the user passes (rates per 1,000 tokens).

nova_nb ships no prices: they change, differ by region and contract, and a figure from a stale table
would look authoritative. With no table, or a table without a rate for a kind of token that was used,
the cost is **unknown** (``None``, shown as "no price given"), never $0.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ConfigError, one_of

__all__ = ["TOKEN_KINDS", "Cost", "PriceTable", "load_prices"]

#: The kinds of token a usageEvent counts (``details.total``): speech and text, in and out. Nova Sonic
#: is priced per kind, so a table gives a rate for each kind it prices.
TOKEN_KINDS = ("input_speech", "input_text", "output_speech", "output_text")


@dataclass(frozen=True)
class Cost:
    """A cost, or why there is none. ``amount`` is None when it is unknown."""

    amount: float | None
    currency: str | None = None
    reason: str | None = None

    def __str__(self) -> str:
        if self.amount is None:
            return self.reason or "no price given"
        return f"{self.amount:.6f} {self.currency}"


@dataclass(frozen=True)
class PriceTable:
    """Rates per 1,000 tokens of each kind, with when and where they were read.

    Parameters
    ----------
    per_1k : mapping
        Rate per 1,000 tokens for kinds in :data:`TOKEN_KINDS`; a kind left out has no price, so any
        usage of it makes the cost unknown.
    date : str
        When the rates were read (e.g. ``"2026-11-30"``); required, because prices change.
    source : str
        Where they come from (a URL, a contract); required.
    currency : str
    """

    per_1k: Mapping[str, float]
    date: str
    source: str
    currency: str = "USD"
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.date, str) or not self.date.strip():
            raise ConfigError("a price table needs date= (when the rates were read, e.g. '2026-11-30')")
        if not isinstance(self.source, str) or not self.source.strip():
            raise ConfigError("a price table needs source= (where the rates come from, e.g. a pricing URL)")
        if not self.per_1k:
            raise ConfigError(
                f"a price table needs at least one rate per 1K tokens, for {one_of(TOKEN_KINDS)}"
            )
        for kind, rate in self.per_1k.items():
            if kind not in TOKEN_KINDS:
                raise ConfigError(
                    f"price table: unknown token kind {kind!r}; kinds are {one_of(TOKEN_KINDS)}"
                )
            if (
                isinstance(rate, bool)
                or not isinstance(rate, int | float)
                or not math.isfinite(rate)
                or rate < 0
            ):
                raise ConfigError(
                    f"price table: the rate for {kind} must be a number ≥ 0 per 1K tokens, got {rate!r}"
                )

    def cost(self, tokens: Mapping[str, int | float] | None) -> Cost:
        """The cost of ``tokens`` (counts by kind); unknown when a used kind has no rate."""
        if tokens is None:
            return Cost(None, reason="no token usage reported")
        missing = [k for k in TOKEN_KINDS if tokens.get(k) and k not in self.per_1k]
        if missing:
            return Cost(None, reason=f"no price for {', '.join(missing)} in the table of {self.date}")
        amount = sum(float(tokens.get(k, 0)) / 1000.0 * float(r) for k, r in self.per_1k.items())
        return Cost(amount, self.currency)

    def describe(self) -> str:
        rates = ", ".join(f"{k} {v:g}" for k, v in self.per_1k.items())
        return f"{self.currency} per 1K tokens: {rates} (read {self.date}, from {self.source})"

    def to_json(self) -> dict[str, Any]:
        return {
            "per_1k": dict(self.per_1k),
            "date": self.date,
            "source": self.source,
            "currency": self.currency,
        }


def load_prices(path: str | os.PathLike[str]) -> PriceTable:
    """Read a price table from JSON: ``{"per_1k": {...}, "date": ..., "source": ..., "currency": ...}``."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"price table {str(p)!r} does not exist") from None
    except ValueError as exc:
        raise ConfigError(f"price table {str(p)!r} is not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("per_1k"), dict):
        raise ConfigError(
            f"price table {str(p)!r}: expected an object with per_1k (rates by kind: {one_of(TOKEN_KINDS)}), "
            "date and source"
        )
    extra = set(data) - {"per_1k", "date", "source", "currency"}
    if extra:
        raise ConfigError(f"price table {str(p)!r}: unknown key(s) {one_of(sorted(extra))}")
    return PriceTable(
        per_1k=data["per_1k"],
        date=data.get("date", ""),
        source=data.get("source", ""),
        currency=data.get("currency", "USD"),
    )
