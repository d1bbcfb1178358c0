"""The project's exception hierarchy: every error a user can meet subclasses :class:`NovaNbError`;
every warning subclasses :class:`NovaNbWarning`.

Messages name what was wrong and what is valid, so a notebook user can fix the call without reading
the source. Secrets are never part of a message.
"""

from __future__ import annotations

from collections.abc import Iterable


class NovaNbError(Exception):
    """Base class of every error raised by nova_nb."""


class ConfigError(NovaNbError, ValueError):
    """An option, provider name or value that is not valid. Also a ``ValueError``."""


class AudioFormatError(NovaNbError, ValueError):
    """Audio that cannot be used as given (dtype, shape, rate, length). Also a ``ValueError``."""


class ProtocolError(NovaNbError):
    """An event that breaks the Nova Sonic protocol (shape, order or limits)."""


class StreamError(NovaNbError):
    """The bidirectional stream failed: an exception from the service, a reset, or a timeout.

    ``code`` is the service's exception type (``validationException``, ``throttlingException``, ...)
    or a local code such as ``StreamReset``; ``recoverable`` says whether reconnecting can help.
    """

    def __init__(self, message: str, *, code: str = "StreamError", recoverable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.recoverable = recoverable

    def __str__(self) -> str:
        return f"{self.code}: {self.args[0]}"


class SessionClosedError(NovaNbError):
    """An operation on a session that has been closed."""


class StateError(NovaNbError, RuntimeError):
    """An operation the object's state does not allow now: writing to a closed file, restarting a
    stopped emulator, waiting on a loop from its own thread. Also a ``RuntimeError``."""


class UsageError(NovaNbError, TypeError):
    """A call the API does not allow as made: a value of the wrong kind (a responder that returns no
    text), or an operation the type forbids (pickling a secret). Also a ``TypeError``."""


class NovaNbWarning(UserWarning):
    """Something that works but probably is not what the user wants (a retired model, say).

    A ``UserWarning``, so ``warnings.filterwarnings("ignore", category=NovaNbWarning)`` silences just
    nova_nb's warnings. Never raised as an error: the call goes on.
    """


def one_of(values: Iterable[object]) -> str:
    """Render valid values for an error message: ``'a', 'b' or 'c'``."""
    items = [repr(v) for v in values]
    if not items:
        return "(none)"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " or " + items[-1]
