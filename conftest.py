"""Settings for the whole test run (``./dev test``: the tests and the notebooks executed by nbval).

Each notebook cell is one test item under the global 120 s bound (pyproject.toml). Notebook 10 runs
an evaluation of 128 conversations in one cell, minutes of CPU on a 2-core machine, so its cells get a
longer bound; every other item keeps 120 s.
"""

from __future__ import annotations

import pytest

LONG_NOTEBOOKS: dict[str, int] = {"10_evaluate_at_scale.ipynb": 600}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        bound = LONG_NOTEBOOKS.get(item.path.name)
        if bound is not None:
            item.add_marker(pytest.mark.timeout(bound))
