"""The provider registry: ``register_provider``, ``new_provider``, ``providers``.

The seed's pattern in Python: a provider registers a factory under a name; ``new_provider(name,
config, **options)`` builds one. Built-in providers are imported on first use (so importing
``nova_nb.s2s`` does not load the AWS SDK); third-party packages can register through the entry-point
group ``nova_nb.s2s.providers`` (the entry point names a factory callable).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from ..errors import ConfigError
from .config import Config, check_option_names, default_config, option_names
from .session import S2SProvider

ENTRY_POINT_GROUP = "nova_nb.s2s.providers"

ProviderFactory = Callable[..., S2SProvider]


@dataclass(frozen=True)
class _Registration:
    factory: ProviderFactory
    #: Options beyond Config's fields that this factory accepts as keyword arguments.
    extra_options: frozenset[str]


_lock = threading.Lock()
_registry: dict[str, _Registration] = {}
#: Built-ins as "module:factory", imported on first use so that importing nova_nb.s2s stays light.
_BUILTINS = {
    "amazon_nova": ("nova_nb.s2s.providers.amazon_nova.provider:create", ()),
    "local": ("nova_nb.emulator.local:create", ("engine", "emulator", "responder")),
    "cascade": ("nova_nb.cascade:create", ("responder",)),
}
_entry_points_loaded = False


def register_provider(name: str, factory: ProviderFactory, *, extra_options: Iterable[str] = ()) -> None:
    """Register ``factory(config, **extra) -> S2SProvider`` under ``name`` (replacing any earlier one).

    ``extra_options`` names keyword options the factory takes besides Config's fields.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"provider name must be an identifier such as 'my_provider', got {name!r}")
    if not callable(factory):
        raise ConfigError(f"provider factory for {name!r} must be callable")
    with _lock:
        _registry[name] = _Registration(factory, frozenset(extra_options))


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _registry:
            continue
        try:
            factory = ep.load()
        except Exception as exc:  # a broken plug-in must not break the built-ins
            import warnings

            warnings.warn(f"nova_nb: could not load provider entry point {ep.name!r}: {exc}", stacklevel=2)
            continue
        register_provider(ep.name, factory)


def _lookup(name: str) -> _Registration:
    if name not in _registry and name in _BUILTINS:
        target, extra = _BUILTINS[name]
        module, _, attr = target.partition(":")
        register_provider(name, getattr(importlib.import_module(module), attr), extra_options=extra)
    if name not in _registry:
        _load_entry_points()
    try:
        return _registry[name]
    except KeyError:
        raise ConfigError(
            f"unknown provider {name!r}. Registered providers: {', '.join(providers())}."
        ) from None


def providers() -> list[str]:
    """Names of the registered providers (built-ins and entry points), sorted."""
    _load_entry_points()
    return sorted(set(_registry) | set(_BUILTINS))


def new_provider(name: str, config: Config | None = None, **options: Any) -> S2SProvider:
    """Create a provider: ``config`` (default: ``default_config()``) with ``options`` applied.

    Raises ConfigError for an unknown provider, an unknown option (listing the valid ones) or an
    invalid value (saying what is valid).
    """
    if config is not None and not isinstance(config, Config):
        raise ConfigError(
            f"config must be a nova_nb.s2s.Config (see s2s.default_config()), got {type(config)}"
        )
    registration = _lookup(name)
    # The provider's name comes from ``name``; it is not an option.
    fields = set(option_names()) - {"provider"}
    check_option_names(options, valid=tuple(sorted(fields | registration.extra_options)))
    config_options = {k: v for k, v in options.items() if k in fields}
    extra = {k: v for k, v in options.items() if k not in fields}
    base = config or default_config()
    resolved = base.replace(**config_options, provider=name)
    return registration.factory(resolved, **extra)
