"""The ``amazon_nova`` provider (registered by name in :mod:`nova_nb.s2s.registry`).

Sans-I/O modules: :mod:`.catalog` (facts: models, voices, limits), :mod:`.wire` (event shapes, both
directions), :mod:`.client` (the client-role protocol state machine), :mod:`.validator` (the
server-role checks the emulator applies). I/O modules: :mod:`.transport` (SDK client, credentials),
:mod:`.session` (the asyncio session), :mod:`.provider`.
"""
