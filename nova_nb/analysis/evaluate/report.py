"""The report of an evaluation, built from ``results.jsonl`` alone (the last line of each job).

Per setting: how many jobs ran and failed; the latency distributions of every definition
(``response_s``, ``decision_to_audio_s``, ``service_response_s`` when the service sent its speech
events, ``audio_to_heard_s`` when a player reported); the word error rate of the USER transcript;
barge-in figures for items that asked for one; tokens per session and per turn; the cost, only with a
:class:`~.prices.PriceTable`. Shows as HTML in a notebook; :meth:`EvalReport.save` writes
``summary.md`` (or ``.html``) and PNG plots.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ...errors import ConfigError
from ..latency import LATENCY_METRICS, summarize
from .metrics import NORMALISATION, corpus_wer
from .prices import TOKEN_KINDS, Cost, PriceTable
from .runner import RESULTS_FILE, SKIPPED, ResultsLog, latest

__all__ = ["EvalReport"]

BARGE_IN_METRICS = ("reaction_s", "flush_s", "heard_s")
_UNPACED = "audio sent faster than real time: latencies show the pipeline, not real-time behaviour"


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return _fmt(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class EvalReport:
    """An evaluation's results and the figures computed from them.

    Attributes
    ----------
    results : list of dict
        The last results line of each (item, setting), in file order.
    prices : PriceTable or None
    folder : pathlib.Path or None
        The run's folder (recordings are relative to it).
    """

    results: list[dict[str, Any]]
    prices: PriceTable | None = None
    folder: Path | None = None
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.prices is not None and not isinstance(self.prices, PriceTable):
            raise ConfigError(f"prices must be a PriceTable (or None), got {type(self.prices).__name__}")
        if not self.labels:
            self.labels = list(dict.fromkeys(r["label"] for r in self.results))

    @classmethod
    def load(cls, folder: str | os.PathLike[str], *, prices: PriceTable | None = None) -> EvalReport:
        """The report of a run folder (its ``results.jsonl``)."""
        root = Path(folder)
        path = root / RESULTS_FILE
        if not path.exists():
            raise ConfigError(
                f"{str(root)!r} holds no {RESULTS_FILE}: not an evaluation folder (or nothing ran)"
            )
        return cls(list(latest(ResultsLog(path).read()).values()), prices, root)

    # -- slices -----------------------------------------------------------------------------------

    def of(self, label: str) -> list[dict[str, Any]]:
        return [r for r in self.results if r["label"] == label]

    def ok(self, label: str) -> list[dict[str, Any]]:
        return [r for r in self.of(label) if r["status"] == "ok"]

    def errors(self) -> list[dict[str, Any]]:
        """The results lines that are errors (a job the budget skipped is not one: :meth:`skipped`)."""
        return [r for r in self.results if r["status"] not in ("ok", SKIPPED)]

    def skipped(self) -> list[dict[str, Any]]:
        """Jobs the run did not start (``skip_reason``: the budget); a rerun with a higher cap runs them."""
        return [r for r in self.results if r["status"] == SKIPPED]

    def paced(self, label: str) -> bool:
        return all(r.get("pace", True) is not False for r in self.of(label))

    # -- latency ----------------------------------------------------------------------------------

    def latency_values(self) -> dict[str, dict[str, list[float]]]:
        """``{metric: {label: [seconds per turn]}}`` over the turns of every job that finished ok."""
        out: dict[str, dict[str, list[float]]] = {m: {} for m in LATENCY_METRICS}
        for lb in self.labels:
            for r in self.ok(lb):
                for t in r.get("turns") or []:
                    for m in LATENCY_METRICS:
                        if t.get(m) is not None:
                            out[m].setdefault(lb, []).append(float(t[m]))
        return out

    def latency(self, label: str) -> dict[str, dict[str, float]]:
        """Count, mean, min, p50/p90/p95/p99, max of each latency definition (``analysis.summarize``)."""
        rows = [
            SimpleNamespace(**{m: t.get(m) for m in LATENCY_METRICS})
            for r in self.ok(label)
            for t in r.get("turns") or []
        ]
        return summarize(rows)

    # -- WER --------------------------------------------------------------------------------------

    def wer_rows(self) -> list[dict[str, Any]]:
        """One row per job with a WER: item, setting, WER, the expected and the heard text."""
        return [
            {"item": r["item"], "setting": r["label"], **r["wer"]}
            for r in self.results
            if r["status"] == "ok" and r.get("wer")
        ]

    def wer(self, label: str) -> dict[str, Any]:
        """WER of a setting: over the whole set (jiwer on all pairs) and the mean of the items'."""
        pairs = [(r["wer"]["reference"], r["wer"]["hypothesis"]) for r in self.ok(label) if r.get("wer")]
        items = [r["wer"]["wer"] for r in self.ok(label) if r.get("wer")]
        return {
            "n": len(pairs),
            "corpus": corpus_wer(pairs),
            "mean": sum(items) / len(items) if items else None,
        }

    # -- barge-in ---------------------------------------------------------------------------------

    def barge_in(self, label: str) -> dict[str, Any]:
        asked = [r for r in self.ok(label) if r.get("barge_in")]
        hit = [r["barge_in"] for r in asked if r["barge_in"].get("happened")]
        rows = [SimpleNamespace(**{m: b.get(m) for m in BARGE_IN_METRICS}) for b in hit]
        return {"asked": len(asked), "happened": len(hit), "summary": summarize(rows, BARGE_IN_METRICS)}

    # -- usage and cost ---------------------------------------------------------------------------

    def usage(self, label: str) -> dict[str, Any]:
        """Tokens: totals over the setting's sessions, the mean per session and per turn."""
        sessions = [r["usage"] for r in self.ok(label) if r.get("usage")]
        turns = [t["tokens"] for r in self.ok(label) for t in r.get("turns") or [] if t.get("tokens")]
        keys = (*TOKEN_KINDS, "total")
        total = {k: sum(s.get(k, 0) for s in sessions) for k in keys} if sessions else None
        return {
            "sessions": len(sessions),
            "total": total,
            "per_session": {k: v / len(sessions) for k, v in total.items()} if total else None,
            "per_turn": {k: sum(t.get(k, 0) for t in turns) / len(turns) for k in keys} if turns else None,
        }

    def cost(self, label: str) -> Cost:
        """The setting's cost over all its sessions: unknown without a price table, never 0."""
        if self.prices is None:
            return Cost(None, reason="no price given")
        total = self.usage(label)["total"]
        if total is None:
            return Cost(None, reason="no token usage reported")
        return self.prices.cost(total)

    # -- tables -----------------------------------------------------------------------------------

    SUMMARY_HEADER = (
        "setting",
        "jobs",
        "errors",
        "skipped",
        "response p50",
        "response p90",
        "response max",
        "service response p50",
        "decision→audio p50",
        "WER (set)",
        "WER (mean)",
        "tokens / session",
        "cost",
    )

    def summary_rows(self) -> list[list[Any]]:
        rows = []
        for lb in self.labels:
            lat = self.latency(lb)
            w = self.wer(lb)
            u = self.usage(lb)
            skipped = sum(r["status"] == SKIPPED for r in self.of(lb))
            rows.append(
                [
                    lb + ("" if self.paced(lb) else " (not real time)"),
                    len(self.of(lb)),
                    len(self.of(lb)) - len(self.ok(lb)) - skipped,
                    skipped,
                    lat.get("response_s", {}).get("p50"),
                    lat.get("response_s", {}).get("p90"),
                    lat.get("response_s", {}).get("max"),
                    lat.get("service_response_s", {}).get("p50"),
                    lat.get("decision_to_audio_s", {}).get("p50"),
                    w["corpus"],
                    w["mean"],
                    u["per_session"]["total"] if u["per_session"] else None,
                    str(self.cost(lb)),
                ]
            )
        return rows

    def latency_rows(self) -> list[list[Any]]:
        rows = []
        for lb in self.labels:
            for m, s in self.latency(lb).items():
                rows.append([lb, m, int(s["n"]), s["mean"], s["p50"], s["p90"], s["max"]])
        return rows

    def barge_in_rows(self) -> list[list[Any]]:
        rows = []
        for lb in self.labels:
            b = self.barge_in(lb)
            if not b["asked"]:
                continue
            s = b["summary"]
            rows.append([lb, b["asked"], b["happened"], *(s.get(m, {}).get("p50") for m in BARGE_IN_METRICS)])
        return rows

    def usage_rows(self) -> list[list[Any]]:
        rows = []
        for lb in self.labels:
            u = self.usage(lb)
            if not u["sessions"]:
                continue
            ps, pt = u["per_session"], u["per_turn"] or {}
            rows.append([lb, u["sessions"], *(ps[k] for k in (*TOKEN_KINDS, "total")), pt.get("total")])
        return rows

    def error_rows(self) -> list[list[Any]]:
        return [[r["item"], r["label"], r.get("error_kind"), r.get("error")] for r in self.errors()]

    def skipped_rows(self) -> list[list[Any]]:
        return [[r["item"], r["label"], r.get("skip_reason")] for r in self.skipped()]

    def wer_table_rows(self) -> list[list[Any]]:
        return [[w["item"], w["setting"], w["wer"], w["reference"], w["hypothesis"]] for w in self.wer_rows()]

    def _sections(self) -> list[tuple[str, Sequence[str], list[list[Any]], str | None]]:
        notes = None if all(self.paced(lb) for lb in self.labels) else _UNPACED
        price = self.prices.describe() if self.prices else "no price table given: cost unknown (not 0)"
        return [
            (
                "Summary (seconds; tokens per session)",
                self.SUMMARY_HEADER,
                self.summary_rows(),
                f"cost: {price}",
            ),
            (
                "Latency per setting (seconds, over the turns of jobs that finished)",
                ("setting", "metric", "n", "mean", "p50", "p90", "max"),
                self.latency_rows(),
                notes,
            ),
            (
                "Word error rate per item (normalised: " + NORMALISATION + ")",
                ("item", "setting", "WER", "expected", "USER transcript"),
                self.wer_table_rows(),
                None,
            ),
            (
                "Barge-in (p50, seconds)",
                ("setting", "asked", "happened", *BARGE_IN_METRICS),
                self.barge_in_rows(),
                None,
            ),
            (
                "Tokens (usageEvent totals): mean per session, and per turn",
                ("setting", "sessions", *TOKEN_KINDS, "total", "total per turn"),
                self.usage_rows(),
                None,
            ),
            ("Errors", ("item", "setting", "kind", "error"), self.error_rows(), None),
            (
                "Skipped: not started (the budget)",
                ("item", "setting", "why"),
                self.skipped_rows(),
                "not errors: rerun in the same folder with a higher cap to run them",
            ),
        ]

    def to_markdown(self, images: Sequence[str] = ()) -> str:
        """The report as Markdown (``images``: PNG file names to link under the summary)."""
        parts = [f"# Evaluation: {self._headline()}\n"]
        if self.folder is not None:
            parts.append(
                f"Results: `{self.folder / RESULTS_FILE}`; recordings under `{self.folder / 'recordings'}`.\n"
            )
        for title, header, rows, note in self._sections():
            if not rows and title != "Summary (seconds; tokens per session)":
                continue
            parts.append(f"## {title}\n")
            if note:
                parts.append(f"_{note}_\n")
            parts.append(markdown_table(header, rows) + "\n")
            if title.startswith("Summary"):
                parts += [f"![{name}]({name})\n" for name in images]
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        parts = [f"<h4>Evaluation: {html.escape(self._headline())}</h4>"]
        for title, header, rows, note in self._sections():
            if not rows and not title.startswith("Summary"):
                continue
            parts.append(f"<b>{html.escape(title)}</b>")
            if note:
                parts.append(f"<p><i>{html.escape(note)}</i></p>")
            parts.append(_html_table(header, rows))
        return "\n".join(parts)

    # -- plots and files ---------------------------------------------------------------------------

    def plot_latency(self) -> Any:
        """Box + dots per setting for each latency definition (matplotlib Figure)."""
        from .plots import plot_latency_distributions

        note = None if all(self.paced(lb) for lb in self.labels) else "audio sent faster than real time"
        return plot_latency_distributions(self.latency_values(), self.labels, note=note)

    def plot_wer(self) -> Any:
        from .plots import plot_wer

        per_item = {lb: [r["wer"]["wer"] for r in self.ok(lb) if r.get("wer")] for lb in self.labels}
        corpus = {lb: self.wer(lb)["corpus"] for lb in self.labels}
        return plot_wer(per_item, corpus, self.labels)

    def save(self, folder: str | os.PathLike[str] | None = None, *, format: str = "md") -> list[Path]:
        """Write ``summary.md`` (``format="md"``) or ``summary.html`` (``"html"``) and the PNG plots.

        Parameters
        ----------
        folder : path, optional
            Where; by default the run's folder.

        Returns
        -------
        list of pathlib.Path
            The files written.
        """
        if format not in ("md", "html"):
            raise ConfigError(f"format must be 'md' or 'html', got {format!r}")
        root = Path(folder) if folder is not None else self.folder
        if root is None:
            raise ConfigError("this report has no folder: pass one to save()")
        root.mkdir(parents=True, exist_ok=True)
        written = []
        images = []
        for name, make in (("latency.png", self.plot_latency), ("wer.png", self.plot_wer)):
            if name == "wer.png" and not self.wer_rows():
                continue
            fig = make()
            fig.savefig(root / name)
            written.append(root / name)
            images.append(name)
        if format == "md":
            target = root / "summary.md"
            target.write_text(self.to_markdown(images), encoding="utf-8")
        else:
            target = root / "summary.html"
            imgs = "".join(f"<p><img src='{n}'></p>" for n in images)
            target.write_text(
                "<!doctype html><meta charset='utf-8'><title>nova-nb eval</title>"
                f"{self._repr_html_()}{imgs}\n",
                encoding="utf-8",
            )
        written.append(target)
        return written

    def _headline(self) -> str:
        skipped = len(self.skipped())
        more = f", {skipped} skipped (budget)" if skipped else ""
        return f"{len(self.results)} jobs, {len(self.errors())} errors{more}"

    def __repr__(self) -> str:
        skipped = len(self.skipped())
        more = f", {skipped} skipped" if skipped else ""
        return (
            f"<EvalReport {len(self.results)} jobs, {len(self.labels)} settings, "
            f"{len(self.errors())} errors{more}>"
        )
