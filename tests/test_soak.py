"""The soak's quick mode: a few minutes of audio over many stream renewals lose no user audio."""

from __future__ import annotations

import asyncio

import pytest

from bench import soak

pytestmark = pytest.mark.slow


def test_quick_soak_loses_nothing_across_renewals() -> None:
    result = asyncio.run(soak.soak(soak.QUICK))
    assert result["session_error"] is None
    assert result["renewals"]["session_renewals"] >= 3, result["renewals"]
    assert result["samples"]["sent"] >= 0.9 * soak.QUICK.audio_s * soak.RATE
    assert result["samples"]["lost"] == 0, result["samples"]
    # Generous: the quick run is short and the machine shared; the hour-long run has the real target.
    assert result["rss_mb"]["growth_after_warmup"] <= 60, result["rss_mb"]
