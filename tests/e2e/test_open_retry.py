"""Throttling when opening the first stream is waited out and retried; refusals that mean "no" are not."""

from __future__ import annotations

import asyncio
import threading

import pytest

from nova_nb import s2s
from nova_nb.emulator import BackgroundEmulator, HttpError
from nova_nb.emulator.conversation import conversation_handler
from nova_nb.emulator.server import RequestInfo
from nova_nb.errors import NovaNbWarning
from nova_nb.protocol import catalog
from nova_nb.s2s import events as ev


class RefuseFirst:
    """An admission hook that refuses the first ``n`` calls with ``error`` (a busy account)."""

    def __init__(self, n: int, error: HttpError) -> None:
        self.n, self.error, self.calls = n, error, 0
        self._lock = threading.Lock()

    def __call__(self, info: RequestInfo) -> HttpError | None:
        with self._lock:
            self.calls += 1
            return self.error if self.calls <= self.n else None


@pytest.mark.parametrize(
    "error",
    [
        HttpError(429, "ThrottlingException", "Too many requests, please wait before trying again."),
        HttpError(400, "ServiceQuotaExceededException", "Too many concurrent streams."),
    ],
)
async def test_throttled_open_is_retried_then_succeeds(error: HttpError) -> None:
    admission = RefuseFirst(2, error)
    emulator = BackgroundEmulator(handler=conversation_handler(), admission=admission).start()
    try:
        provider = s2s.new_provider("local", emulator=emulator, reconnect_attempts=3)
        session = await provider.start_streaming()  # type: ignore[attr-defined]
        try:
            assert admission.calls == 3
            seen: list[ev.Event] = []

            async def read() -> None:
                async for event in session.events():
                    seen.append(event)
                    if isinstance(event, ev.SessionStarted):
                        return

            await asyncio.wait_for(read(), 5)
            retries = [e for e in seen if isinstance(e, ev.Reconnecting)]
            assert [r.attempt for r in retries] == [1, 2]
            assert all(r.code.lower() == error.error_type.lower() and 0 < r.delay_s <= 1.0 for r in retries)
            assert isinstance(seen[len(retries)], ev.SessionStarted)
        finally:
            await session.close()
    finally:
        emulator.stop()


async def test_throttling_gives_up_after_reconnect_attempts() -> None:
    admission = RefuseFirst(10, HttpError(429, "ThrottlingException", "Too many requests."))
    emulator = BackgroundEmulator(handler=conversation_handler(), admission=admission).start()
    try:
        provider = s2s.new_provider("local", emulator=emulator, reconnect_attempts=1)
        with pytest.raises(s2s.StreamError) as info:
            await provider.start_streaming()  # type: ignore[attr-defined]
        assert admission.calls == 2 and info.value.code == "throttlingException"
        assert "Too many requests." in str(info.value) and "1 retries" in str(info.value)
    finally:
        emulator.stop()


@pytest.mark.parametrize(
    "error",
    [
        HttpError(403, "AccessDeniedException", "You don't have access to the model."),
        HttpError(400, "ValidationException", "The provided model identifier is invalid."),
    ],
)
async def test_access_denied_and_validation_fail_at_once(error: HttpError) -> None:
    admission = RefuseFirst(10, error)
    emulator = BackgroundEmulator(handler=conversation_handler(), admission=admission).start()
    try:
        provider = s2s.new_provider("local", emulator=emulator, reconnect_attempts=5)
        with pytest.raises(s2s.StreamError) as info:
            await provider.start_streaming()  # type: ignore[attr-defined]
        assert admission.calls == 1 and not info.value.recoverable
    finally:
        emulator.stop()


async def test_emulator_can_refuse_retired_models() -> None:
    emulator = BackgroundEmulator(handler=conversation_handler(), refuse_retired=True).start()
    try:
        assert catalog.NOVA_SONIC_V1 not in emulator.server.model_ids
        assert catalog.NOVA_2_5_SONIC in emulator.server.model_ids
        with pytest.warns(NovaNbWarning):
            provider = s2s.new_provider("local", emulator=emulator, model_id=catalog.NOVA_SONIC_V1)
        with pytest.raises(s2s.StreamError) as info:
            await provider.start_streaming()  # type: ignore[attr-defined]
        assert "model identifier is invalid" in str(info.value)
        provider = s2s.new_provider("local", emulator=emulator)  # the default, Nova 2.5, is served
        session = await provider.start_streaming()  # type: ignore[attr-defined]
        await session.close()
    finally:
        emulator.stop()
