"""Our public surface against the real icechunk 2.3.0's, on every run.

``real_icechunk_2_3_0.json`` is generated from the real package by ``dump_surface.py`` (see its
docstring). Every top-level name, every public member of every public class (and nested class)
and every parameter (name, kind, default) of every public function and method must match, except
the entries of :data:`DIFFERENCES`, each with its reason. An entry that no longer differs fails
too, so the list cannot go stale.
"""

from __future__ import annotations

import json
from typing import Any

from tests.surface.dump_surface import REFERENCE, collect

# Reasons. ``gap:`` entries are real 2.3.0 API not matched yet (issue 13 follow-ups);
# ``deliberate:`` entries stay, for the reason given.
_STORAGE_PRIM = "deliberate: our Storage is a pluggable abstract Python class (user backends subclass it); these are its object primitives, which the real one keeps in Rust. Its real constructors (new_*), default_settings and list_objects(_metadata) match"
_FACTORY_KW = "deliberate: we add keywords (retries, max_concurrent_requests; s3_storage check_bucket; azure_storage get_credentials/scatter_initial_credentials for refreshable Azure credentials, which the real factory only takes through Storage.new_azure_blob)"

_CTOR = "deliberate: constructed by the library, not by users; the real one takes its Rust handle, ours the Python objects it wraps"
_SESS_PRIM = "deliberate: the session's node/chunk primitives that IcechunkStore and the integrations call (the real one keeps them in Rust)"
_ERRKIND = "deliberate: our own error code, for a failure the real library reports with a generic code or not at all (ErrorKind docstring)"
_EXTRA_NAME = "deliberate: our own public name, not in the real package (earlier releases of this package, or our storage layer: from_url, ObjectStoreStorage)"
_ENUM_CTOR = "deliberate: a Python Enum (lookup by value, EnumType call form) where the real one is a PyO3 enum"
_OBJCFG = "deliberate: ObjectStoreConfig variants are dataclasses with named fields where the real ones are PyO3 tuple variants (_0, _1)"
_HELPER = "deliberate: internal helper on a public config class (serialisation, effective defaults); harmless extra"
_UPDATES = "deliberate: one UpdateType class per kind, built from (kind, fields); the real per-kind constructors take the fields by name"
_FSYNC = "deliberate: we add StorageSettings(unsafe_use_fsync=) (local storage durability: off turns every flush off, as the real one never flushes; issue 15) and its effective value"
_MERGE_KW = "deliberate: we add keyword on_overlap (what to do when forks wrote the same chunk)"
_DASK = "deliberate: the 1.x call form (session first) is still accepted"
_XR = "deliberate: the 1.x call form (store=...) is still accepted; adds split_every and compute"
_GC_PROGRESS = (
    "deliberate: we add keyword progress (phase, done, total callback; the CLI's progress display)"
)
_RETRIES = "deliberate: ours state the effective defaults (the real ones say None) and add retry_timeout_ms"

#: Known differences: dotted path -> reason. A path listed here must really differ.
DIFFERENCES: dict[str, str] = {
    "ForkSession.merge_async": _MERGE_KW,
    "Session.merge_async": _MERGE_KW,
    "UpdateType.FeatureFlagChanged": _UPDATES,
    "UpdateType.FeatureFlagChanged.id": _UPDATES,
    "UpdateType.FeatureFlagChanged.new_value": _UPDATES,
    "UpdateType.RepoMigrated": _UPDATES,
    "UpdateType.RepoMigrated.from_version": _UPDATES,
    "UpdateType.RepoMigrated.to_version": _UPDATES,
    "UpdateType.RepoStatusChanged": _UPDATES,
    "UpdateType.RepoStatusChanged.status": _UPDATES,
    "ForkSession.chunk_payloads": _SESS_PRIM,
    "Session.chunk_payloads": _SESS_PRIM,
    "RepoStatus.from_record": _HELPER,
    "RepoStatus.to_record": _HELPER,
    "StorageSettings": _FSYNC,
    "StorageSettings.effective_use_fsync": _FSYNC,
    "StorageSettings.unsafe_use_fsync": _FSYNC,
    "ChunkOverlapWarning": _EXTRA_NAME,
    "ChunkStorageStats": _EXTRA_NAME,
    "CompressionAlgorithm": _ENUM_CTOR,
    "ConflictType": _ENUM_CTOR,
    "ErrorKind.AMEND_NOT_ALLOWED": _ERRKIND,
    "ErrorKind.FEATURE_DISABLED": _ERRKIND,
    "ErrorKind.FORMAT": _ERRKIND,
    "ErrorKind.INTERNAL": _ERRKIND,
    "ErrorKind.INVALID_ARGUMENT": _ERRKIND,
    "ErrorKind.INVALID_METADATA": _ERRKIND,
    "ErrorKind.MERGE_CONFLICT": _ERRKIND,
    "ErrorKind.OBJECT_ALREADY_EXISTS": _ERRKIND,
    "ErrorKind.PRECONDITION_FAILED": _ERRKIND,
    "ErrorKind.REPO_READ_ONLY": _ERRKIND,
    "ErrorKind.STORAGE": _ERRKIND,
    "ErrorKind.UNKNOWN_FORMAT_FIELDS": _ERRKIND,
    "ForkSession": _CTOR,
    "ForkSession.chunk_exists": _SESS_PRIM,
    "ForkSession.chunk_size": _SESS_PRIM,
    "ForkSession.delete_chunk": _SESS_PRIM,
    "ForkSession.delete_node": _SESS_PRIM,
    "ForkSession.get_chunk": _SESS_PRIM,
    "ForkSession.get_metadata": _SESS_PRIM,
    "ForkSession.list_chunks": _SESS_PRIM,
    "ForkSession.list_nodes": _SESS_PRIM,
    "ForkSession.merge": _MERGE_KW,
    "ForkSession.node_metadata": _SESS_PRIM,
    "ForkSession.set_chunk": _SESS_PRIM,
    "ForkSession.set_metadata": _SESS_PRIM,
    "ForkSession.set_virtual_refs_columns": _SESS_PRIM,
    "IcechunkStore": _CTOR,
    "ManifestSplitCondition.matches": _HELPER,
    "ManifestSplitCondition.to_json": _HELPER,
    "ManifestSplitDimCondition.matches": _HELPER,
    "ManifestSplitDimCondition.to_json": _HELPER,
    "ManifestSplittingConfig.split_sizes_for": _HELPER,
    "ManifestSplittingConfig.to_json": _HELPER,
    "ObjectStoreConfig.Azure": _OBJCFG,
    "ObjectStoreConfig.Azure.account": _OBJCFG,
    "ObjectStoreConfig.Azure.config": _OBJCFG,
    "ObjectStoreConfig.Gcs": _OBJCFG,
    "ObjectStoreConfig.Gcs.opts": _OBJCFG,
    "ObjectStoreConfig.Http": _OBJCFG,
    "ObjectStoreConfig.Http.headers": _OBJCFG,
    "ObjectStoreConfig.Http.opts": _OBJCFG,
    "ObjectStoreConfig.LocalFileSystem": _OBJCFG,
    "ObjectStoreConfig.LocalFileSystem.path": _OBJCFG,
    "ObjectStoreConfig.S3": _OBJCFG,
    "ObjectStoreConfig.S3.options": _OBJCFG,
    "ObjectStoreConfig.S3Compatible": _OBJCFG,
    "ObjectStoreConfig.S3Compatible.options": _OBJCFG,
    "ObjectStoreConfig.Tigris": _OBJCFG,
    "ObjectStoreConfig.Tigris.options": _OBJCFG,
    "ObjectStoreStorage": _EXTRA_NAME,
    "Repository": _CTOR,
    "Repository.garbage_collect": _GC_PROGRESS,
    "Repository.garbage_collect_async": _GC_PROGRESS,
    "RepositoryConfig.effective_compression_level": _HELPER,
    "RepositoryConfig.effective_inline_chunk_threshold_bytes": _HELPER,
    "RepositoryConfig.effective_num_updates_per_repo_info_file": _HELPER,
    "RepositoryConfig.splitting": _HELPER,
    "Session": _CTOR,
    "Session.chunk_exists": _SESS_PRIM,
    "Session.chunk_size": _SESS_PRIM,
    "Session.delete_chunk": _SESS_PRIM,
    "Session.delete_node": _SESS_PRIM,
    "Session.get_chunk": _SESS_PRIM,
    "Session.get_metadata": _SESS_PRIM,
    "Session.list_chunks": _SESS_PRIM,
    "Session.list_nodes": _SESS_PRIM,
    "Session.merge": _MERGE_KW,
    "Session.node_metadata": _SESS_PRIM,
    "Session.set_chunk": _SESS_PRIM,
    "Session.set_metadata": _SESS_PRIM,
    "Session.set_virtual_refs_columns": _SESS_PRIM,
    "SessionMode": _ENUM_CTOR,
    "Storage.delete": _STORAGE_PRIM,
    "Storage.exists": _STORAGE_PRIM,
    "Storage.get": _STORAGE_PRIM,
    "Storage.get_with_version": _STORAGE_PRIM,
    "Storage.is_empty": _STORAGE_PRIM,
    "Storage.list": _STORAGE_PRIM,
    "Storage.put": _STORAGE_PRIM,
    "Storage.put_copy": _STORAGE_PRIM,
    "Storage.supports_conditional_update": _STORAGE_PRIM,
    "StorageRetriesSettings": _RETRIES,
    "StorageRetriesSettings.retry_timeout_ms": _RETRIES,
    "StorageRetriesSettings.to_obstore": _RETRIES,
    "UpdateType.BranchCreated": _UPDATES,
    "UpdateType.BranchCreated.name": _UPDATES,
    "UpdateType.BranchDeleted": _UPDATES,
    "UpdateType.BranchDeleted.name": _UPDATES,
    "UpdateType.BranchDeleted.previous_snap_id": _UPDATES,
    "UpdateType.BranchReset": _UPDATES,
    "UpdateType.BranchReset.name": _UPDATES,
    "UpdateType.BranchReset.previous_snap_id": _UPDATES,
    "UpdateType.CommitAmended": _UPDATES,
    "UpdateType.CommitAmended.branch": _UPDATES,
    "UpdateType.CommitAmended.new_snap_id": _UPDATES,
    "UpdateType.CommitAmended.previous_snap_id": _UPDATES,
    "UpdateType.ConfigChanged": _UPDATES,
    "UpdateType.ExpirationRan": _UPDATES,
    "UpdateType.GCRan": _UPDATES,
    "UpdateType.MetadataChanged": _UPDATES,
    "UpdateType.NewCommit": _UPDATES,
    "UpdateType.NewCommit.branch": _UPDATES,
    "UpdateType.NewCommit.new_snap_id": _UPDATES,
    "UpdateType.NewDetachedSnapshot": _UPDATES,
    "UpdateType.NewDetachedSnapshot.new_snap_id": _UPDATES,
    "UpdateType.RepoInitialized": _UPDATES,
    "UpdateType.TagCreated": _UPDATES,
    "UpdateType.TagCreated.name": _UPDATES,
    "UpdateType.TagDeleted": _UPDATES,
    "UpdateType.TagDeleted.name": _UPDATES,
    "UpdateType.TagDeleted.previous_snap_id": _UPDATES,
    "UpdateType.fields": _UPDATES,
    "UpdateType.kind": _UPDATES,
    "UpdateType.of": _UPDATES,
    "VirtualChunkModifiedError": _EXTRA_NAME,
    "azure_storage": _FACTORY_KW,
    "azure_store": _EXTRA_NAME,
    "dask.store_dask": _DASK,
    "from_url": _EXTRA_NAME,
    "gcs_storage": _FACTORY_KW,
    "s3_storage": _FACTORY_KW,
    "xarray.to_icechunk": _XR,
}


#: Rules for whole categories, applied before the list above.
#: - A class the real package does not let users construct (PyO3 class without a
#:   constructor, recorded with ``params: null``): our constructor is internal, not compared.
#: - A real function or method without an introspectable signature (``params: null``): only
#:   its existence and kind are compared.
#: - Data attributes: a property, a slot, an annotated instance field and a class attribute
#:   read the same, so they compare equal.
#: - A member overriding one of a third-party base (zarr's ``Store.read_only``) is that base's
#:   API, not an extra; where the real one overrides it, only its existence is compared.
#: - Top-level submodules of ours that the real package does not have (``icechunk.refs``, ...):
#:   a submodule appears on its package as a side effect of being imported; ours are the
#:   implementation's layout, not API.


def _reference() -> dict[str, dict[str, Any]]:
    return dict(json.loads(REFERENCE.read_text())["surface"])


def _kind(kind: str) -> str:
    # A data attribute reads the same whether it is a property, a slot or a plain attribute.
    return "data" if kind in ("property", "attribute") else kind


def _same_params(real: list[list[Any]], ours: list[list[Any]]) -> bool:
    if len(real) != len(ours):
        return False
    for (r_name, r_kind, r_default), (o_name, o_kind, o_default) in zip(real, ours, strict=True):
        if r_name != o_name or r_kind != o_kind:
            return False
        if r_default == "Ellipsis":  # PyO3 text signature "...": some default, value unstated
            if o_default is None:
                return False
        elif r_default != o_default:
            return False
    return True


def _fmt(params: list[list[Any]] | None) -> str:
    if params is None:
        return "<no signature>"
    parts = []
    for name, kind, default in params:
        text = {"var_positional": "*", "var_keyword": "**"}.get(kind, "") + name
        if kind == "keyword":
            text = "kw:" + text
        elif kind == "positional":
            text = "pos:" + text
        if default is not None:
            text += f"={default}"
        parts.append(text)
    return "(" + ", ".join(parts) + ")"


def surface_differences() -> dict[str, str]:
    """Every difference between ours and the real surface, as path -> description."""
    real = _reference()
    ours = collect("icechunk")
    found: dict[str, str] = {}
    for path, entry in real.items():
        mine = ours.get(path)
        if mine is None:
            found[path] = f"missing (real: {entry['kind']} {_fmt(entry['params'])})"
            continue
        if _kind(mine["kind"]) != _kind(entry["kind"]):
            found[path] = f"kind {mine['kind']} (real: {entry['kind']})"
            continue
        if entry["params"] is None or entry["kind"] in ("module", "property", "attribute"):
            continue
        if entry.get("overrides") or mine.get("overrides"):
            continue
        if mine["params"] is None or not _same_params(entry["params"], mine["params"]):
            found[path] = f"signature {_fmt(mine['params'])} (real: {_fmt(entry['params'])})"
    for path, mine in ours.items():
        if path in real:
            continue
        if "." not in path and mine["kind"] == "module":
            continue  # our implementation's submodules (see the rules above)
        if mine.get("overrides"):
            continue  # an override of a third-party base's member (see the rules above)
        parent = path.rsplit(".", 1)[0] if "." in path else None
        if parent is not None and parent not in real:
            continue  # reported once, on the missing or extra parent
        found[path] = f"extra {mine['kind']} {_fmt(mine['params'])}"
    return found


def test_reference_is_the_real_2_3_0() -> None:
    document = json.loads(REFERENCE.read_text())
    assert document["package"] == "icechunk"
    assert document["version"] == "2.3.0"
    assert len([p for p in document["surface"] if "." not in p]) == 126


def test_public_surface_matches_the_real_icechunk() -> None:
    found = surface_differences()
    unexplained = {p: d for p, d in found.items() if p not in DIFFERENCES}
    stale = sorted(p for p in DIFFERENCES if p not in found)
    report = "\n".join(f"  {p}: {d}" for p, d in sorted(unexplained.items()))
    assert not unexplained, f"{len(unexplained)} unexplained differences:\n{report}"
    assert not stale, f"listed in DIFFERENCES but no longer different: {stale}"


def test_every_listed_difference_has_a_reason() -> None:
    prefixes = ("gap: ", "deliberate: ")
    assert all(reason.startswith(prefixes) for reason in DIFFERENCES.values())
