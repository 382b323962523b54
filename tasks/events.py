"""The ``icechunk.commit`` Prefect event: what a downstream deployment is triggered by.

One event per data commit, emitted by :func:`tasks.merge_and_commit` after the commit landed::

    event:    icechunk.commit
    resource: {"prefect.resource.id": "icechunk.repository.<location>",
               "prefect.resource.name": "<location>", "icechunk.branch": "main"}
    related:  [{"prefect.resource.id": "icechunk.snapshot.<id>", "prefect.resource.role": "snapshot"}]
    payload:  {"repository", "branch", "snapshot_id", "message", "dim",
               "appended": {"start", "stop", "first", "last"}, "steps",
               "chunks_written", "bytes_written", "flow_run_id", "idempotency_key"}

The event id is derived from the repository and the snapshot id, so a re-emission (a re-run
that found its commit already there, and emits the event its crashed predecessor could not)
is the *same* event: Prefect's server stores it once and its triggers fire once.

A trigger for a deployment (``prefect.yaml``)::

    triggers:
      - type: event
        match: {"prefect.resource.id": "icechunk.repository.*"}
        expect: ["icechunk.commit"]
        parameters:
          repository: "{{ event.payload.repository }}"
          snapshot_id: "{{ event.payload.snapshot_id }}"
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from prefect.events import emit_event

__all__ = [
    "COMMIT_EVENT",
    "commit_event_id",
    "commit_payload",
    "emit_commit_event",
    "public_location",
]

COMMIT_EVENT = "icechunk.commit"
_NAMESPACE = uuid.UUID("6f0d8c3e-3d55-4d8b-9a53-2a8e7c1e4b10")

# commit-metadata fields copied into the event payload
_PAYLOAD_FIELDS = (
    "dim",
    "appended",
    "steps",
    "chunks_written",
    "bytes_written",
    "flow_run_id",
    "idempotency_key",
)


def public_location(location: str) -> str:
    """``location`` without any user or password a URL may carry (never in events or logs)."""
    parts = urlsplit(location)
    if parts.scheme and (parts.username or parts.password):
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return location


def commit_event_id(location: str, snapshot_id: str) -> uuid.UUID:
    """The event's id: the same for the same commit, whoever emits it."""
    return uuid.uuid5(_NAMESPACE, f"{public_location(location)}\0{snapshot_id}")


def commit_payload(
    location: str, branch: str, snapshot_id: str, message: str, metadata: Mapping[str, Any]
) -> dict[str, Any]:
    """The event payload for a commit (from its stored metadata)."""
    payload: dict[str, Any] = {
        "repository": public_location(location),
        "branch": branch,
        "snapshot_id": snapshot_id,
        "message": message,
    }
    payload.update({k: metadata[k] for k in _PAYLOAD_FIELDS if k in metadata})
    return payload


def emit_commit_event(
    location: str, branch: str, snapshot_id: str, message: str, metadata: Mapping[str, Any]
) -> dict[str, Any]:
    """Emit ``icechunk.commit`` for one commit; return the payload sent."""
    where = public_location(location)
    payload = commit_payload(where, branch, snapshot_id, message, metadata)
    emit_event(
        COMMIT_EVENT,
        resource={
            "prefect.resource.id": f"icechunk.repository.{where}",
            "prefect.resource.name": where,
            "icechunk.branch": branch,
        },
        related=[
            {
                "prefect.resource.id": f"icechunk.snapshot.{snapshot_id}",
                "prefect.resource.role": "snapshot",
            }
        ],
        payload=payload,
        id=commit_event_id(where, snapshot_id),
    )
    return payload
