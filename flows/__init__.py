"""The package's Prefect flows: ``from flows import ingest, append, backfill, on_commit``.

The modules keep their paths for deployment entrypoints (``flows/ingest.py:ingest``,
``flows/downstream.py:on_commit``); note that ``flows.ingest`` is the *flow* here, the module
is ``sys.modules["flows.ingest"]`` (``from flows.ingest import ...`` works as before).
"""

from flows.downstream import on_commit
from flows.ingest import append, backfill, ingest

__all__ = ["append", "backfill", "ingest", "on_commit"]
