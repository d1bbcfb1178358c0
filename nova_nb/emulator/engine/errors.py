"""The error the offline speech engines raise when a backend is missing or fails."""

from __future__ import annotations

from nova_nb.errors import NovaNbError


class SpeechEngineError(NovaNbError, RuntimeError):
    """A speech backend (espeak-ng, Moonshine, Silero) is not installed, cannot load, or failed.

    Bad arguments (an unknown voice, a wrong dtype) raise :class:`~nova_nb.errors.ConfigError` or
    :class:`~nova_nb.errors.AudioFormatError` instead; this error means the engine itself is the problem,
    and its message says how to fix the installation.
    """
