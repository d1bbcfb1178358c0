"""Model lifecycle facts (docs/PROTOCOL.md §12) and the service's speech boundary events, parsed leniently."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from nova_nb.protocol import catalog, wire
from nova_nb.s2s import events as ev
from nova_nb.s2s.providers.amazon_nova.client import NovaClientProtocol

from ..clients import make_client


def test_every_model_has_lifecycle_facts() -> None:
    for model in catalog.MODELS.values():
        life = model.lifecycle
        assert life.status in catalog.LIFECYCLE_STATUSES and life.source


def test_nova_2_5_is_the_default_and_speaks_like_nova_2() -> None:
    assert catalog.DEFAULT_MODEL_ID == catalog.NOVA_2_5_SONIC == "amazon.nova-2-5-sonic"
    m25, m2 = catalog.MODELS[catalog.NOVA_2_5_SONIC], catalog.MODELS[catalog.NOVA_2_SONIC]
    assert (m25.voices, m25.locales, m25.turn_detection, m25.cross_modal_text) == (
        m2.voices, m2.locales, m2.turn_detection, m2.cross_modal_text,
    )  # fmt: skip
    assert m25.lifecycle.launched == "2026-10-05" and m25.status_on(dt.date(2026, 12, 1)) == "active"
    assert catalog.current_models(dt.date(2026, 12, 1))[0] == catalog.NOVA_2_5_SONIC


def test_nova_sonic_v1_is_legacy_then_retired_on_its_end_of_life() -> None:
    life = catalog.MODELS[catalog.NOVA_SONIC_V1].lifecycle
    assert (life.status, life.end_of_life) == ("legacy", dt.date(2026, 9, 14))
    assert "model-card-amazon-nova-sonic" in life.source
    assert life.status_on(dt.date(2026, 9, 13)) == "legacy"
    assert life.status_on(dt.date(2026, 9, 14)) == "retired"
    assert catalog.models_with_status("retired", dt.date(2026, 12, 1)) == (catalog.NOVA_SONIC_V1,)
    message = catalog.lifecycle_warning(catalog.NOVA_SONIC_V1, dt.date(2026, 12, 1))
    assert message is not None
    for part in ("retired", "2026-09-14", "model-card-amazon-nova-sonic", catalog.NOVA_2_5_SONIC):
        assert part in message
    assert catalog.lifecycle_warning(catalog.NOVA_2_SONIC) is None


def _client() -> NovaClientProtocol:
    return make_client(catalog.NOVA_2_5_SONIC)


def _receive(name: str, body: Any) -> list[ev.Event]:
    return _client().receive(json.dumps({"event": {name: body}}), 5.0)


def test_speech_events_as_captured() -> None:
    (start,) = _receive(
        wire.USER_SPEECH_START, {"inputAudioOffsetMs": 320, "promptName": "p", "sessionId": "s"}
    )
    assert isinstance(start, ev.ServiceSpeechStarted)
    assert (start.timestamp, start.input_audio_offset_ms, start.prompt_name, start.session_id) == (
        5.0,
        320,
        "p",
        "s",
    )
    body = {
        "inputAudioOffsetMs": 2480,
        "inputAudioDetectionOffsetMs": 2760,
        "promptName": "p",
        "sessionId": "s",
    }
    (end,) = _receive(wire.USER_SPEECH_END, body)
    assert isinstance(end, ev.ServiceSpeechEnded)
    assert (end.input_audio_offset_ms, end.detection_offset_ms) == (2480, 2760) and end.raw == body
    # Never to be confused with the recorder's energy-detector lines.
    assert {start.kind, end.kind}.isdisjoint({"UserSpeechStarted", "UserSpeechEnded"})


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"inputAudioOffsetMs": None, "inputAudioDetectionOffsetMs": "soon", "promptName": 7},
        {"inputAudioOffsetMs": True, "inputAudioDetectionOffsetMs": float("nan"), "completionId": "c"},
        {"inputAudioOffsetMs": [1], "extra": {"nested": 1}, "sessionId": None},
    ],
)
def test_speech_events_with_missing_or_odd_fields_never_fail(body: dict[str, Any]) -> None:
    for name in (wire.USER_SPEECH_START, wire.USER_SPEECH_END):
        (event,) = _receive(name, body)
        assert isinstance(event, ev.ServiceSpeechStarted | ev.ServiceSpeechEnded)
        assert event.input_audio_offset_ms is None and event.raw.keys() == body.keys()
        if isinstance(event, ev.ServiceSpeechEnded):
            assert event.detection_offset_ms is None


def test_speech_offsets_as_numeric_strings_or_floats() -> None:
    (end,) = _receive(
        wire.USER_SPEECH_END, {"inputAudioOffsetMs": "2480", "inputAudioDetectionOffsetMs": 2760.5}
    )
    assert isinstance(end, ev.ServiceSpeechEnded)
    assert (end.input_audio_offset_ms, end.detection_offset_ms) == (2480, 2760.5)
