"""The client-role protocol state machine with the settings most tests use, built in one place."""

from __future__ import annotations

from typing import Any

from nova_nb.protocol import catalog
from nova_nb.s2s.providers.amazon_nova.client import NovaClientProtocol


def make_client(model_id: str = catalog.NOVA_2_SONIC, **overrides: Any) -> NovaClientProtocol:
    """A NovaClientProtocol: matthew, 16 kHz in, 24 kHz out, MEDIUM endpointing; ``overrides`` win."""
    settings: dict[str, Any] = dict(
        model_id=model_id,
        voice_id="matthew",
        input_sample_rate=16000,
        output_sample_rate=24000,
        max_tokens=1024,
        top_p=0.9,
        temperature=0.7,
        endpointing_sensitivity="MEDIUM",
    )
    settings.update(overrides)
    return NovaClientProtocol(**settings)
