"""The engine: everything a repository does below its public facade.

Nothing here is public API; :mod:`icechunk` (``Repository``, ``Session``, ``IcechunkStore``...)
is the facade over it. Modules here import only each other and the layers below
(:mod:`icechunk.format`, :mod:`icechunk.storage`, :mod:`icechunk.errors` and the small leaf
modules), never the facade; ``pyproject.toml``'s import-linter contract checks that.

See ``docs/architecture.md`` for the module map.
"""
