"""Which provider a notebook or script uses: the offline emulator unless the user asks for the real one.

Finding AWS credentials on the machine never switches anything to the paid service by itself (DESIGN
§3): a learner who happens to have ``~/.aws`` configured would otherwise be billed for every cell they
run. :func:`choose_provider` is the one place that decides, and it says what it decided and why.
"""

from __future__ import annotations

import os
from typing import Final

from ..errors import ConfigError, one_of
from .registry import providers

#: The environment variable that picks the provider, e.g. ``NOVA_NB_PROVIDER=amazon_nova``.
PROVIDER_ENV: Final = "NOVA_NB_PROVIDER"
#: What runs when nobody asks for anything else: the local emulator, free and offline.
DEFAULT_PROVIDER: Final = "local"
#: Providers that call Amazon Bedrock, billed to the AWS account whose credentials sign the calls.
PAID_PROVIDERS: Final = frozenset({"amazon_nova"})


def choose_provider(name: str | None = None, *, quiet: bool = False) -> str:
    """The provider to use: ``name`` if given, else ``$NOVA_NB_PROVIDER``, else ``"local"``.

    Prints (unless ``quiet``) which provider was chosen and why, and for the real service that its
    calls are billed to the AWS account. Raises ConfigError for a name that is not registered.

    >>> choose_provider(quiet=True)  # doctest: +SKIP
    'local'
    """
    if name is not None:
        chosen, why = name, "asked for in the code"
    elif os.environ.get(PROVIDER_ENV, "").strip():
        chosen, why = os.environ[PROVIDER_ENV].strip(), f"from {PROVIDER_ENV}"
    else:
        chosen, why = DEFAULT_PROVIDER, f"the default; set {PROVIDER_ENV}=amazon_nova for Amazon Nova Sonic"
    known = providers()
    if chosen not in known:
        raise ConfigError(f"unknown provider {chosen!r} ({why}). Registered providers: {one_of(known)}.")
    if not quiet:
        if chosen in PAID_PROVIDERS:
            note = "the real Amazon Nova Sonic: calls are billed to the AWS account of your credentials"
        elif chosen == DEFAULT_PROVIDER:
            note = "the offline emulator: no AWS account, no cost"
        else:
            note = "a registered provider"
        print(f"provider: {chosen} ({note}; {why})")
    return chosen
