"""Type aliases of the public API."""

from typing import Literal

#: How :meth:`icechunk.Repository.rewrite_manifests` records its result: as a new commit on
#: the branch (``"new_commit"``) or by replacing the branch tip (``"amend"``, spec 2 only).
CommitMethod = Literal["new_commit", "amend"]

__all__ = ["CommitMethod"]
