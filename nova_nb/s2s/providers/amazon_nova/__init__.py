"""The ``amazon_nova`` provider (registered by name in :mod:`nova_nb.s2s.registry`).

The protocol itself (event shapes, facts, rules) is :mod:`nova_nb.protocol`, shared with the emulator.
Here: :mod:`.client` (the client-role state machine, sans-I/O, emits ``s2s`` events),
:mod:`.transport` (SDK client, credentials), :mod:`.session` (the asyncio session), :mod:`.provider`.
"""
