"""Object keys under the repository root: the only place key strings are built."""

from __future__ import annotations

from icechunk.format.ids import encode_id

__all__ = [
    "CHUNKS",
    "CONFIG_YAML",
    "MANIFESTS",
    "OVERWRITTEN",
    "REFS",
    "REPO_INFO",
    "SNAPSHOTS",
    "TRANSACTIONS",
    "branch_key",
    "chunk_key",
    "manifest_key",
    "snapshot_key",
    "tag_deleted_key",
    "tag_key",
    "transaction_key",
]

REPO_INFO = "repo"
CONFIG_YAML = "config.yaml"
REFS = "refs/"
SNAPSHOTS = "snapshots/"
MANIFESTS = "manifests/"
TRANSACTIONS = "transactions/"
CHUNKS = "chunks/"
OVERWRITTEN = "overwritten/"


def snapshot_key(snapshot_id: bytes) -> str:
    return SNAPSHOTS + encode_id(snapshot_id)


def manifest_key(manifest_id: bytes) -> str:
    return MANIFESTS + encode_id(manifest_id)


def transaction_key(snapshot_id: bytes) -> str:
    return TRANSACTIONS + encode_id(snapshot_id)


def chunk_key(chunk_id: bytes) -> str:
    return CHUNKS + encode_id(chunk_id)


def branch_key(name: str) -> str:
    return f"{REFS}branch.{name}/ref.json"


def tag_key(name: str) -> str:
    return f"{REFS}tag.{name}/ref.json"


def tag_deleted_key(name: str) -> str:
    return f"{REFS}tag.{name}/ref.json.deleted"
