"""A cost cap for a run: stop launching jobs before the next one could take the cost past it.

The cost of a job is only known once it has ended (its session's ``usageEvent`` totals × the
:class:`~.prices.PriceTable`), so the runner *estimates* the next one: the mean cost of the jobs that
have finished (in this folder, this run or earlier), or, before any has, ``first_job_estimate`` if
you give one. Without it the first job runs alone, as a probe, and its cost is the estimate.

Before each launch the runner asks :meth:`BudgetGate.check` whether
``spent + estimate × (running + 1) ≤ max_cost``; when not, it launches nothing more, lets the running
jobs finish, and writes the rest as ``status: "skipped"`` lines (``skip_reason`` says why). Skipped jobs
are not errors and are not done: a rerun in the same folder with a higher cap runs them. The cap can
still be passed by the jobs that were running, by as much as their real cost exceeds the estimate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ...errors import ConfigError
from .prices import PriceTable

__all__ = ["WAIT", "Budget", "BudgetGate", "budget_from"]

#: :meth:`BudgetGate.check`'s answer "launch nothing now; ask again when a running job ends".
WAIT: Final = "wait"


@dataclass(frozen=True)
class Budget:
    """At most ``max_cost`` (in ``currency``, which must be the price table's) for the run's folder.

    Parameters
    ----------
    max_cost : float
        The cap, > 0, over every job of the run's folder (earlier runs in it included).
    currency : str
        The cap's currency; it must match the :class:`~.prices.PriceTable`'s.
    first_job_estimate : float, optional
        What a job is expected to cost before any has finished. Without it the first job runs alone
        and its cost becomes the estimate.
    """

    max_cost: float
    currency: str = "USD"
    first_job_estimate: float | None = None

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_cost, bool)
            or not isinstance(self.max_cost, int | float)
            or not math.isfinite(self.max_cost)
            or self.max_cost <= 0
        ):
            raise ConfigError(f"a budget's max_cost must be a number > 0; got {self.max_cost!r}")
        if not isinstance(self.currency, str) or not self.currency.strip():
            raise ConfigError(f"a budget's currency must be a code such as 'USD'; got {self.currency!r}")
        est = self.first_job_estimate
        if est is not None and (
            isinstance(est, bool) or not isinstance(est, int | float) or not math.isfinite(est) or est < 0
        ):
            raise ConfigError(f"first_job_estimate must be a number ≥ 0 (or None); got {est!r}")

    def describe(self) -> str:
        first = (
            "the first job runs alone to learn a job's cost"
            if self.first_job_estimate is None
            else f"first-job estimate {self.first_job_estimate:g} {self.currency}"
        )
        return f"budget: at most {self.max_cost:g} {self.currency} ({first})"


def budget_from(budget: Budget | float | int | None, prices: PriceTable | None) -> Budget | None:
    """Check a ``budget=`` argument against the price table; a number is a cap in its currency."""
    if budget is None:
        return None
    if prices is None:
        raise ConfigError(
            "a budget needs prices: pass prices=PriceTable(...) (--prices FILE.json on the command line)"
        )
    if not isinstance(prices, PriceTable):
        raise ConfigError(f"prices must be a PriceTable, got {type(prices).__name__}")
    if not isinstance(budget, Budget):
        if isinstance(budget, bool) or not isinstance(budget, int | float):
            raise ConfigError(
                f"budget must be a Budget(max_cost, currency=...) or a number; got {type(budget).__name__}"
            )
        budget = Budget(float(budget), prices.currency)
    if budget.currency != prices.currency:
        raise ConfigError(
            f"the budget is in {budget.currency} but the price table is in {prices.currency}: "
            "use one currency"
        )
    return budget


class BudgetGate:
    """Keeps the cost of finished jobs and decides whether the next may start (module docstring)."""

    def __init__(
        self, budget: Budget, prices: PriceTable, finished: Iterable[Mapping[str, Any]] = ()
    ) -> None:
        self.budget = budget
        self.prices = prices
        self.spent = 0.0
        self.costed = 0  # finished jobs with token usage: the estimate's sample
        self.unknown: str | None = None  # why a finished job's cost is unknown, if one's is
        self.stopped: str | None = None
        for line in finished:
            self.add(line)

    def add(self, line: Mapping[str, Any]) -> None:
        """Count a finished job's cost (a line of ``results.jsonl``; lines without usage cost 0)."""
        usage = line.get("usage")
        if not usage:
            return
        cost = self.prices.cost(usage)
        if cost.amount is None:
            self.unknown = self.unknown or f"job {line.get('item')!r} / {line.get('label')}: {cost}"
            return
        self.spent += cost.amount
        self.costed += 1

    @property
    def estimate(self) -> float | None:
        """The expected cost of the next job: the mean so far, else ``first_job_estimate``."""
        if self.costed:
            return self.spent / self.costed
        return self.budget.first_job_estimate

    def check(self, running: int) -> str | None:
        """None: launch the next job. :data:`WAIT`: not yet. Any other string: stop, and why."""
        if self.stopped is not None:
            return self.stopped
        cur, cap = self.budget.currency, self.budget.max_cost
        if self.unknown is not None:
            self.stopped = (
                f"budget: the cost of {self.unknown}; a budget needs a rate for every kind of token used"
            )
            return self.stopped
        est = self.estimate
        if est is None:
            return WAIT if running else None  # the probe: one job alone tells what a job costs
        projected = self.spent + est * (running + 1)
        if projected > cap:
            self.stopped = (
                f"budget: {self.spent:.6f} {cur} spent + {running + 1} × {est:.6f} {cur} estimated "
                f"= {projected:.6f} {cur} would pass the cap of {cap:g} {cur}; rerun with a higher cap "
                "to run these"
            )
            return self.stopped
        return None
