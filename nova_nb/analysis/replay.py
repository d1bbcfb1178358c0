"""Replay a recording's user audio as the user side of a new session.

The local emulator, like a listener, only hears the audio it is sent: :func:`replay` sends exactly
the frames the original session sent (:meth:`Recording.user_audio`, without the silence the recorder
adds for gaps in time), re-framed to the new session's frame size, at real-time pace by default. The
same user audio against another setting gives the same turns, so their timings can be compared
(see :func:`~nova_nb.analysis.experiments.compare_settings`).
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConfigError
from ..s2s import ConversationContext, StreamingS2SProvider
from .experiments import run_conversation
from .recording import Recording

__all__ = ["replay"]


async def replay(
    recording: Recording | str | os.PathLike[str],
    provider: StreamingS2SProvider,
    folder: str | os.PathLike[str],
    *,
    voice_id: str | None = None,
    context: ConversationContext | None = None,
    pace: bool = True,
    timeout_s: float | None = None,
    **kwargs: Any,
) -> Recording:
    """Speak a recording's user audio into a new session of ``provider``, recording it to ``folder``.

    Parameters
    ----------
    recording : Recording or path
        What to replay.
    provider : StreamingS2SProvider
        The settings to replay against (its input rate must be the recording's).
    folder : str or os.PathLike
        Where the new recording goes.
    voice_id : str, optional
    context : ConversationContext, optional
    pace : bool
        Real time (default), or as fast as the session takes it (same turns on the local emulator,
        whose turn-taking counts audio time; latencies then mean little).
    timeout_s : float, optional
        Bound on the run; default: the recording's user audio plus 60 s.
    **kwargs
        Passed to :func:`~nova_nb.analysis.experiments.run_conversation`.

    Returns
    -------
    Recording
        The new session's recording; ``meta.json`` ``user.replay_of`` names the original.

    Examples
    --------
    >>> again = await replay(Recording.load("rec-001"), provider, "rec-001-replay")   # doctest: +SKIP
    >>> len(latency_report(again.events).turns)                                       # doctest: +SKIP
    """
    original = recording if isinstance(recording, Recording) else Recording.load(recording)
    if original.input_rate != provider.config.input_sample_rate:
        raise ConfigError(
            f"the recording's input is at {original.input_rate} Hz but the provider takes "
            f"{provider.config.input_sample_rate} Hz: use a provider with input_sample_rate="
            f"{original.input_rate}"
        )
    pcm = original.user_audio()
    metadata = {"replay_of": str(original.folder), **kwargs.pop("metadata", {})}
    return await run_conversation(
        provider,
        pcm,
        folder,
        voice_id=voice_id,
        context=context,
        pace=pace,
        timeout_s=timeout_s if timeout_s is not None else pcm.size / original.input_rate + 60.0,
        metadata=metadata,
        **kwargs,
    )
