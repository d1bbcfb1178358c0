"""The Amazon Nova Sonic protocol, pure: no asyncio, no I/O, no import of ``nova_nb.s2s``.

The one source of truth for what the service accepts and says, used by both roles (as h11 serves
client and server from one state machine):

- :mod:`.catalog`: facts — models, voices, locales, sample rates, limits, the latency-target mapping,
  model lifecycle.
- :mod:`.wire`: every event shape, both directions (builders and parsers of the JSON events).
- :mod:`.rules`: the service's input rules (:class:`~.rules.InputValidator`), applied by the emulator
  and by tests to whatever a client sends.
- :mod:`.order`: the order of output events (completionStart → USER FINAL → … → completionEnd), one
  state machine that the client uses to flag a service that breaks it and the emulator uses to never
  produce it.

The provider's client state machine (``nova_nb.s2s.providers.amazon_nova.client``) builds on these and
turns output into ``s2s`` events; the emulator (``nova_nb.emulator``) serves them.
"""
