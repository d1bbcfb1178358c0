"""Widgets for JupyterLab: live microphone and speaker, push-to-talk, and a whole session panel.

>>> from nova_nb import widgets
>>> panel = widgets.talk()                           # doctest: +SKIP  (a Start button; talk)
>>> panel = widgets.talk(file="question.wav")        # doctest: +SKIP  (no browser: says the file)

:class:`LiveAudio`
    anywidget: AudioWorklet microphone capture resampled to 16 kHz, gap-free playback, instant flush,
    playback position reported to the session, level meter, echo-cancellation toggle.
:class:`PushToTalk`
    ipywebrtc recorder; WebM/Opus decoded with PyAV and sent paced.
:class:`SessionPanel`
    provider, voice and latency pickers, start/stop, mute, transcript, per-turn latency, players.
:func:`talk`
    display a panel; without a browser (nbval, scripts) say a file through it instead.
``nova_nb.widgets.server``
    Jupyter server extension, enabled on install: TCP_NODELAY on kernel websockets, for lower
    kernel → page latency (``server.extension_enabled()`` says whether it is on).

The names are imported on first use (PEP 562), so the server extension, which lives in this package,
loads in the Jupyter server without numpy, ipywidgets or the session API.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from ._decode import decode_audio, encode_webm_opus
    from ._live import LiveAudio, load_audio, percentiles
    from ._panel import SessionPanel, TurnRecord, frontend_attached
    from ._recorder import PushToTalk

_LAZY = {
    "LiveAudio": "._live",
    "load_audio": "._live",
    "percentiles": "._live",
    "SessionPanel": "._panel",
    "TurnRecord": "._panel",
    "frontend_attached": "._panel",
    "PushToTalk": "._recorder",
    "decode_audio": "._decode",
    "encode_webm_opus": "._decode",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "LiveAudio",
    "PushToTalk",
    "SessionPanel",
    "TurnRecord",
    "decode_audio",
    "encode_webm_opus",
    "frontend_attached",
    "load_audio",
    "percentiles",
    "talk",
]


def talk(
    provider: str = "local",
    *,
    file: str | Path | np.ndarray | None = None,
    voice: str | None = None,
    latency_target: str = "low",
    system_prompt: str | None = None,
    headless: bool | None = None,
    timeout: float = 60.0,
    display: bool = True,
    **provider_options: Any,
) -> SessionPanel:
    """Show a session panel: press Start and talk. Without a browser, say ``file`` through it.

    Parameters
    ----------
    provider : str
        ``"local"`` (offline emulator, the default) or ``"amazon_nova"``.
    file : path or array, optional
        What to say when no browser is attached (a WAV, WebM, ... file or 16 kHz int16 samples).
    voice, latency_target : str
        The panel's initial picks.
    system_prompt : str, optional
        The conversation's system prompt.
    headless : bool, optional
        Force the file path (True) or the button path (False); default: :func:`frontend_attached`.
    timeout : float
        Seconds to wait for the reply on the file path.
    display : bool
        Display the panel (in a notebook).
    **provider_options
        More options for ``s2s.new_provider`` (e.g. ``engine="scripted"``).

    Returns
    -------
    SessionPanel
        After the file path, ``panel.turns`` holds the reply (transcript, latency, audio).
    """
    from .. import s2s
    from ._panel import SessionPanel, frontend_attached

    context = s2s.ConversationContext(system_prompt=system_prompt) if system_prompt else None
    panel = SessionPanel(
        provider,
        voice=voice,
        latency_target=latency_target,
        context=context,
        provider_options=provider_options,
    )
    if display:
        from IPython.display import display as show

        show(panel)
    if headless is None:
        headless = not frontend_attached()
    if headless and file is not None:
        panel.run_file(file, timeout=timeout)
    return panel
