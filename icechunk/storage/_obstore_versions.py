"""Version tokens of the obstore backend: what a conditional update compares.

A :class:`~icechunk.storage.base.VersionInfo` holds the ETag; on GCS it holds the object
generation too (as a JSON pair), because that is what GCS compares.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from icechunk.errors import StorageError
from icechunk.storage._credentials import StoreKind
from icechunk.storage.base import VersionInfo

if TYPE_CHECKING:
    from obstore import UpdateVersion


def _version_token(kind: StoreKind, meta: Mapping[str, Any]) -> VersionInfo:
    e_tag, version = meta.get("e_tag"), meta.get("version")
    if kind == "gcs" and version:  # GCS compares generations: keep both
        return VersionInfo(json.dumps([e_tag, version]))
    if not e_tag:
        raise StorageError("the object store returned no ETag; conditional updates need one")
    return VersionInfo(str(e_tag))


def _update_version(version: VersionInfo) -> UpdateVersion:
    token = version.etag
    if token.startswith("["):
        try:
            e_tag, ver = json.loads(token)
        except (ValueError, TypeError):
            pass
        else:
            return {"e_tag": e_tag, "version": ver}
    return {"e_tag": token}
