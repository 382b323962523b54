"""Public value objects of the operations log (spec 2 repositories)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["Update", "UpdateType"]


@dataclass(frozen=True, slots=True)
class UpdateType:
    """The kind of a repository mutation, with its fields (``name``, ``branch``, ids ...).

    ``kind`` is one of ``RepoInitialized``, ``RepoMigrated``, ``ConfigChanged``,
    ``MetadataChanged``, ``TagCreated``, ``TagDeleted``, ``BranchCreated``, ``BranchDeleted``,
    ``BranchReset``, ``NewCommit``, ``CommitAmended``, ``NewDetachedSnapshot``, ``GCRan``,
    ``ExpirationRan``, ``FeatureFlagChanged``, ``RepoStatusChanged``. Snapshot ids are given in
    their 20-character text form.
    """

    kind: str
    fields: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.fields.items())
        return f"{self.kind}({args})"

    @classmethod
    def of(cls, kind: str, fields: dict[str, Any]) -> UpdateType:
        """An update of ``kind``, as an instance of its per-kind class ``UpdateType.<kind>``
        (so that ``isinstance(update.kind, UpdateType.NewCommit)`` works as with the real
        Icechunk); unknown kinds get the base class."""
        sub = _KINDS.get(kind, cls)
        return sub(kind, fields)


KINDS = (
    "RepoInitialized",
    "RepoMigrated",
    "ConfigChanged",
    "MetadataChanged",
    "TagCreated",
    "TagDeleted",
    "BranchCreated",
    "BranchDeleted",
    "BranchReset",
    "NewCommit",
    "CommitAmended",
    "NewDetachedSnapshot",
    "GCRan",
    "ExpirationRan",
    "FeatureFlagChanged",
    "RepoStatusChanged",
)
"""Every kind of operations-log entry, in the order of the format's union."""

_KINDS: dict[str, type[UpdateType]] = {
    name: type(
        name,
        (UpdateType,),
        {"__slots__": (), "__module__": __name__, "__qualname__": f"UpdateType.{name}"},
    )
    for name in KINDS
}
for _name, _sub in _KINDS.items():
    setattr(UpdateType, _name, _sub)


@dataclass(frozen=True, slots=True)
class Update:
    """One entry of the operations log."""

    kind: UpdateType
    updated_at: datetime
    backup_path: str | None = None
