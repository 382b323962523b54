"""Debugging views of a repository: its on-disk objects as plain dicts, and its history as a graph.

The dicts have the keys of the real Icechunk 2.x ``inspect_*`` methods (ids in their text form,
times as ISO-8601 UTC strings with a ``Z``). Like the real ones they are debugging aids whose
exact structure may change.

Every view reports a ``header`` describing the binary header of the object it read:
``written_by`` (the writing library, e.g. ``ic-2.3.0``), ``app_name`` and ``app_version`` (that
name split at its last ``-``), ``spec_version`` (``"1.0"`` or ``"2.0"``: the version of *that
file*, which after a migration can be older than the repository's), ``file_type`` and
``compression``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from icechunk._core.refs import MAIN, RefStoreV2
from icechunk.errors import ErrorKind, FormatError, ObjectNotFoundError, SnapshotNotFoundError
from icechunk.format import (
    decode_repo_info,
    decode_snapshot,
    decode_transaction_log,
    layout,
)
from icechunk.format.ids import encode_id, parse_snapshot_id
from icechunk.format.manifest import ManifestView
from icechunk.format.model import ChunkKind, SnapshotInfoRecord, TransactionLog, UpdateRecord

if TYPE_CHECKING:
    from icechunk._core.objects import RepoObjects

__all__ = [
    "AncestryGraph",
    "ancestry_graph",
    "inspect_manifest",
    "inspect_repo_info",
    "inspect_snapshot",
    "inspect_transaction_log",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_FILE_TYPES: Final = {
    1: "snapshot",
    2: "manifest",
    3: "attributes",
    4: "transaction-log",
    5: "chunk",
    6: "repo-info",
}
_COMPOSITE_NOTE: Final = (
    "Synthetic composite: this snapshot's ancestry was collapsed by expiration; the log below "
    "merges its pruned-ancestor logs with its own log. `header` describes this snapshot's own "
    "log only."
)


def _time(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _header(data: bytes) -> dict[str, Any]:
    """The header fields of an object's bytes (already validated by the decoder)."""
    written_by = data[12:36].decode("ascii", "replace").strip()
    app_name, _, app_version = written_by.rpartition("-")
    return {
        "written_by": written_by,
        "app_name": app_name or written_by,
        "app_version": app_version,
        "spec_version": f"{data[36]}.0",
        "file_type": _FILE_TYPES.get(data[37], str(data[37])),
        "compression": "zstd" if data[38] == 1 else "none",
    }


async def _get(repo: RepoObjects, key: str, what: str, ident: str) -> bytes:
    try:
        return await repo.storage.get(key)
    except ObjectNotFoundError:
        if what == "snapshot":
            raise SnapshotNotFoundError(
                f"snapshot id not found `{ident}`", ErrorKind.SNAPSHOT_NOT_FOUND
            ) from None
        raise


# ---------------------------------------------------------------------------------------------
# object views


async def inspect_snapshot(repo: RepoObjects, snapshot_id: str) -> dict[str, Any]:
    """The snapshot file ``snapshot_id``: header, commit fields, manifests and node tree.

    Keys: ``id``, ``header``, ``flushed_at``, ``commit_message``, ``metadata``, ``manifests``,
    ``nodes`` (each with ``id``, ``path``, ``node_type``; arrays add ``shape`` and
    ``manifest_refs``).

    Raises
    ------
    InvalidInputError
        ``snapshot_id`` is not a snapshot id.
    SnapshotNotFoundError
        There is no such snapshot file.
    """
    sid = parse_snapshot_id(snapshot_id)
    key = layout.snapshot_key(sid)
    data = await _get(repo, key, "snapshot", snapshot_id)
    snap = decode_snapshot(data, key)
    nodes: list[dict[str, Any]] = []
    for node in snap.nodes:
        entry: dict[str, Any] = {"id": encode_id(node.id), "path": node.path}
        if node.array is None:
            entry["node_type"] = "group"
        else:
            entry["node_type"] = "array"
            entry["shape"] = [
                {"array_length": d.array_length, "num_chunks": d.num_chunks}
                for d in node.array.shape
            ]
            entry["manifest_refs"] = [
                {"id": encode_id(m.object_id), "extents": [list(e) for e in m.extents]}
                for m in node.array.manifests
            ]
        nodes.append(entry)
    return {
        "id": encode_id(snap.id),
        "header": _header(data),
        "flushed_at": _time(snap.flushed_at),
        "commit_message": snap.message,
        "metadata": snap.metadata,
        "manifests": [
            {"id": encode_id(m.id), "size_bytes": m.size_bytes, "num_chunk_refs": m.num_chunk_refs}
            for m in snap.manifest_files
        ],
        "nodes": nodes,
    }


async def inspect_manifest(repo: RepoObjects, manifest_id: str) -> dict[str, Any]:
    """Chunk-reference counts of the manifest file ``manifest_id``, in total and per array.

    Keys: ``id``, ``header``, ``size_bytes`` (the object's length), ``num_arrays``,
    ``total_chunk_refs``, ``total_inline``, ``total_native``, ``total_virtual``, ``arrays``,
    ``compression``.

    Raises
    ------
    InvalidInputError
        ``manifest_id`` is not an object id.
    ObjectNotFoundError
        There is no such manifest file.
    """
    mid = parse_snapshot_id(manifest_id)
    key = layout.manifest_key(mid)
    data = await repo.storage.get(key)
    view = ManifestView(data, key)
    manifest = view.decode()
    dictionary_size, num_compressed = view.location_compression()
    compression: dict[str, Any] = {"uses_location_compression": dictionary_size is not None}
    if dictionary_size is not None:
        compression["dictionary_size_bytes"] = dictionary_size
    compression["num_compressed_refs"] = num_compressed
    arrays = []
    totals = {"inline": 0, "native": 0, "virtual": 0}
    for array in manifest.arrays:
        kinds = array.refs.kind
        counts = {
            "inline": int(np.count_nonzero(kinds == ChunkKind.INLINE)),
            "native": int(np.count_nonzero(kinds == ChunkKind.NATIVE)),
            "virtual": int(np.count_nonzero(kinds == ChunkKind.VIRTUAL)),
        }
        for k, v in counts.items():
            totals[k] += v
        arrays.append(
            {
                "node_id": encode_id(array.node_id),
                "num_chunk_refs": len(array.refs),
                "num_inline": counts["inline"],
                "num_native": counts["native"],
                "num_virtual": counts["virtual"],
            }
        )
    return {
        "id": encode_id(manifest.id),
        "header": _header(data),
        "size_bytes": len(data),
        "num_arrays": len(manifest.arrays),
        "total_chunk_refs": manifest.num_chunk_refs,
        "total_inline": totals["inline"],
        "total_native": totals["native"],
        "total_virtual": totals["virtual"],
        "arrays": arrays,
        "compression": compression,
    }


async def inspect_transaction_log(repo: RepoObjects, snapshot_id: str) -> dict[str, Any]:
    """The transaction log of ``snapshot_id``: what that commit changed, by node id.

    Keys: ``header``, ``new_groups``, ``new_arrays``, ``deleted_groups``, ``deleted_arrays``,
    ``updated_groups``, ``updated_arrays``, ``updated_chunks``, ``moved_nodes``. When expiration
    cut ancestors out of the snapshot's history (spec 2.1 ``pruned_ancestor_tx_logs``), the
    view merges their logs into this one and adds ``synthetic_composite`` with ``note``,
    ``merged_pruned_ancestor_tx_logs`` (oldest first) and ``missing_tx_logs`` (listed logs
    absent from storage, skipped).

    Raises
    ------
    InvalidInputError
        ``snapshot_id`` is not a snapshot id.
    ObjectNotFoundError
        The snapshot has no transaction log (e.g. the root of a spec-1 repository).
    """
    sid = parse_snapshot_id(snapshot_id)
    key = layout.transaction_key(sid)
    data = await repo.storage.get(key)
    own = decode_transaction_log(data, key)
    pruned: tuple[bytes, ...] = ()
    refs = repo.refs
    if isinstance(refs, RefStoreV2):
        for rec in (await refs.read()).snapshots:
            if rec.id == sid:
                pruned = rec.pruned_ancestor_tx_logs or ()
                break
    missing: list[str] = []
    logs: list[TransactionLog] = []
    for pid in pruned:
        pkey = layout.transaction_key(pid)
        try:
            logs.append(decode_transaction_log(await repo.storage.get(pkey), pkey))
        except ObjectNotFoundError:
            missing.append(encode_id(pid))
    tx = TransactionLog.merged([*logs, own]) if pruned else own
    out: dict[str, Any] = {"header": _header(data)}
    for name in (
        "new_groups",
        "new_arrays",
        "deleted_groups",
        "deleted_arrays",
        "updated_groups",
        "updated_arrays",
    ):
        out[name] = [encode_id(x) for x in getattr(tx, name)]
    out["updated_chunks"] = [
        {"node_id": encode_id(node), "chunks": [list(map(int, c)) for c in coords]}
        for node, coords in tx.updated_chunks.items()
    ]
    out["moved_nodes"] = [
        {
            "from": m.from_path,
            "to": m.to_path,
            "node_id": encode_id(m.node_id),
            "node_type": "array" if m.is_array else "group",
        }
        for m in tx.moved_nodes
    ]
    if pruned:
        out["synthetic_composite"] = {
            "note": _COMPOSITE_NOTE,
            "merged_pruned_ancestor_tx_logs": [encode_id(p) for p in pruned],
            "missing_tx_logs": missing,
        }
    return out


def _update_dict(u: UpdateRecord) -> dict[str, Any]:
    kind: dict[str, Any] = {"type": f"{u.kind}Update"}
    for name, value in u.fields.items():
        if isinstance(value, bytes) and len(value) == 12:
            kind[name] = encode_id(value)
        elif hasattr(value, "availability"):
            kind[name] = {
                "availability": value.availability,
                "set_at": _time(value.set_at),
                "limited_availability_reason": value.reason,
            }
        else:
            kind[name] = value
    out: dict[str, Any] = {"update_type": kind, "updated_at": _time(u.updated_at)}
    if u.backup_path is not None:
        out["backup_path"] = u.backup_path
    return out


def _snapshot_dict(rec: SnapshotInfoRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"id": encode_id(rec.id)}
    if rec.parent_id is not None:
        out["parent_id"] = encode_id(rec.parent_id)
    out["flushed_at"] = _time(rec.flushed_at)
    out["message"] = rec.message
    out["metadata"] = rec.metadata
    if rec.pruned_ancestor_tx_logs:
        out["pruned_ancestor_tx_logs"] = [encode_id(p) for p in rec.pruned_ancestor_tx_logs]
    return out


async def inspect_repo_info(repo: RepoObjects) -> dict[str, Any]:
    """The spec-2 ``repo`` object: refs, every snapshot's history record and the ops log.

    Keys: ``header``, ``spec_version``, ``branches`` and ``tags`` (name to snapshot id),
    ``deleted_tags``, ``snapshots`` (sorted by id), ``metadata``, ``latest_updates`` (newest
    first).

    Raises
    ------
    FormatError
        The repository is spec 1, which has no ``repo`` object.
    """
    if not isinstance(repo.refs, RefStoreV2):
        raise FormatError(
            "repository version error, this operation requires a repository that is at least "
            "version 2.0, please upgrade your on-disk format before executing this operation",
            ErrorKind.UNSUPPORTED_SPEC_VERSION,
        )
    data = await repo.storage.get(layout.REPO_INFO)
    info = decode_repo_info(data, layout.REPO_INFO)
    return {
        "header": _header(data),
        "spec_version": f"{info.spec_version}.0",
        "branches": {r.name: encode_id(r.snapshot_id) for r in sorted(info.branches, key=_name)},
        "tags": {r.name: encode_id(r.snapshot_id) for r in sorted(info.tags, key=_name)},
        "deleted_tags": sorted(info.deleted_tags),
        "snapshots": [_snapshot_dict(r) for r in sorted(info.snapshots, key=lambda r: r.id)],
        "metadata": info.metadata,
        "latest_updates": [_update_dict(u) for u in info.latest_updates],
    }


def _name(ref: Any) -> str:
    return str(ref.name)


# ---------------------------------------------------------------------------------------------
# ancestry graph

_PALETTE: Final = ((183, 228, 0), (166, 83, 255), (255, 149, 0), (0, 190, 220), (255, 90, 120))
_TAG_RGB: Final = (94, 196, 247)


@dataclass(frozen=True, slots=True)
class _Row:
    """One commit of the graph: its lane, the lanes drawn beside it, and its text."""

    lane: int
    active: tuple[int, ...]
    """Lanes with a line passing through this row (besides ``lane``)."""
    merged: tuple[int, ...]
    """Lanes that end here, joining ``lane`` (a branch forked from this commit)."""
    snapshot_id: str
    branches: tuple[str, ...]
    tags: tuple[str, ...]
    message: str
    below: tuple[int, ...]
    """Lanes with a line continuing below this row."""


def _rgb(rgb: tuple[int, int, int], text: str, *, bold: bool = False, italic: bool = False) -> str:
    style = ("1;" if bold else "") + ("3;" if italic else "")
    return f"\x1b[{style}38;2;{rgb[0]};{rgb[1]};{rgb[2]}m{text}\x1b[0m"


class AncestryGraph:
    """A drawing of the commit history: ``str()`` gives text, ``_repr_svg_()`` an SVG image.

    Text uses ANSI colours unless built with ``plain=True``. Only commits reachable from
    branches (or from the one ref or snapshot asked for) appear; detached snapshots do not.
    """

    def __init__(self, rows: list[_Row], width: int, plain: bool) -> None:
        self._rows = rows
        self._width = width
        self._plain = plain

    def _lane_rgb(self, lane: int) -> tuple[int, int, int]:
        return _PALETTE[lane % len(_PALETTE)]

    def _cell(self, lane: int, text: str) -> str:
        return text if self._plain else _rgb(self._lane_rgb(lane), text)

    def __str__(self) -> str:
        lines: list[str] = []
        for i, row in enumerate(self._rows):
            cells: list[str] = []
            last_merge = max(row.merged, default=-1)
            for lane in range(self._width):
                if lane == row.lane:
                    glyph = self._cell(lane, "●")
                elif lane in row.merged:
                    glyph = self._cell(lane, "╯")
                elif lane in row.active:
                    glyph = self._cell(lane, "│")
                else:
                    glyph = " "
                joiner = "─" if row.lane <= lane < last_merge else " "
                cells.append(glyph + (self._cell(last_merge, joiner) if joiner != " " else " "))
            labels = [self._label(b, lane=row.lane) for b in row.branches]
            labels += [self._label(t, tag=True) for t in row.tags]
            ident = row.snapshot_id[:8] if self._plain else f"\x1b[2m{row.snapshot_id[:8]}\x1b[0m"
            text = ident + (f" ({', '.join(labels)})" if labels else "") + f" {row.message}"
            lines.append("".join(cells) + text)
            if i + 1 < len(self._rows):
                between = "".join(
                    (self._cell(lane, "│") if lane in row.below else " ") + " "
                    for lane in range(self._width)
                )
                lines.append(between)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _label(self, name: str, *, lane: int = 0, tag: bool = False) -> str:
        if self._plain:
            return name
        if tag:
            return _rgb(_TAG_RGB, name, bold=True, italic=True)
        return _rgb(self._lane_rgb(lane), name, bold=True)

    def _repr_svg_(self) -> str:
        step, dx, r = 28, 20, 5
        height = step * len(self._rows) + 4
        text_x = 15 + dx * self._width + 14
        longest = max((len(x.message) + 40 for x in self._rows), default=40)
        width = text_x + 8 * longest
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            'style="font-family: monospace; font-size: 13px;">'
        )
        out = [head]

        def x(lane: int) -> int:
            return 15 + dx * lane

        def color(lane: int) -> str:
            if self._plain:
                return "#888"
            red, green, blue = self._lane_rgb(lane)
            return f"#{red:02X}{green:02X}{blue:02X}"

        for i, row in enumerate(self._rows):
            y = 15 + step * i
            out.extend(
                f'  <line x1="{x(lane)}" y1="{y}" x2="{x(lane)}" y2="{y + step}" '
                f'stroke="{color(lane)}" stroke-width="2" />'
                for lane in row.below
            )
            out.extend(
                f'  <path d="M {x(lane)} {y - step} C {x(lane)} {y - step // 2}, '
                f'{x(row.lane)} {y - step // 2}, {x(row.lane)} {y}" fill="none" '
                f'stroke="{color(lane)}" stroke-width="2" />'
                for lane in row.merged
            )
            fill = "white" if self._plain else color(row.lane)
            out.append(
                f'  <circle cx="{x(row.lane)}" cy="{y}" r="{r}" fill="{fill}" '
                f'stroke="{color(row.lane)}" />'
            )
            labels = [html.escape(n) for n in (*row.branches, *row.tags)]
            label = f" ({', '.join(labels)})" if labels else ""
            out.append(
                f'  <text x="{text_x}" y="{y + 4}" fill="#555"><tspan fill="#888">'
                f"{row.snapshot_id[:8]}</tspan>{label} {html.escape(row.message)}</text>"
            )
        out.append("</svg>")
        return "\n".join(out)


async def ancestry_graph(
    repo: RepoObjects,
    *,
    branch: str | None = None,
    tag: str | None = None,
    snapshot_id: str | None = None,
    plain: bool = False,
) -> AncestryGraph:
    """The history of every branch as a tree, or of one ref or snapshot as a line.

    With no argument every branch is drawn, ``main`` in the first lane, forks joining the
    commit they started from. With one of ``branch``, ``tag``, ``snapshot_id`` that history
    alone is drawn. Tags label the commits they point at.

    Raises
    ------
    ValueError
        More than one of ``branch``, ``tag``, ``snapshot_id`` is given.
    RefNotFoundError, SnapshotNotFoundError
        The ref or snapshot does not exist.
    """
    given = sum(x is not None for x in (branch, tag, snapshot_id))
    if given > 1:
        raise ValueError("Must provide at most one of branch, tag, or snapshot_id")
    refs = repo.refs
    branches = await refs.branches()
    tags = await refs.tags()
    tags_at: dict[bytes, list[str]] = {}
    for name, target in sorted(tags.items()):
        tags_at.setdefault(target, []).append(name)
    if given:
        start = await repo.resolve(branch, tag, snapshot_id)
        history = await refs.ancestry(start)
        line = [
            _Row(
                0,
                (),
                (),
                encode_id(rec.id),
                (branch,) if branch is not None and i == 0 else (),
                tuple(tags_at.get(rec.id, ())),
                rec.message,
                (0,) if i + 1 < len(history) else (),
            )
            for i, rec in enumerate(history)
        ]
        return AncestryGraph(line, 1, plain)
    order = sorted(branches, key=lambda n: (n != MAIN, n))
    records: dict[bytes, SnapshotInfoRecord] = {}
    for name in order:
        for rec in await refs.ancestry(branches[name]):
            if rec.id in records:
                break
            records[rec.id] = rec
    branches_at: dict[bytes, list[str]] = {}
    for name in order:
        branches_at.setdefault(branches[name], []).append(name)
    # one lane per distinct branch tip, main first; a lane is drawn from its tip downwards
    lanes: list[bytes | None] = []
    for name in order:
        if branches[name] not in lanes:
            lanes.append(branches[name])
    started = [False] * len(lanes)
    commits = sorted(records.values(), key=lambda r: (r.flushed_at, r.id), reverse=True)
    rows: list[_Row] = []
    for rec in commits:
        hits = [i for i, want in enumerate(lanes) if want == rec.id]
        if not hits:  # only reachable through a lane that was already merged: give it a lane
            lanes.append(rec.id)
            started.append(False)
            hits = [len(lanes) - 1]
        lane, merged = hits[0], tuple(h for h in hits[1:] if started[h])
        for h in hits:
            started[h] = True
        active = tuple(i for i, want in enumerate(lanes) if want is not None and started[i])
        for h in hits[1:]:
            lanes[h] = None
        lanes[lane] = rec.parent_id
        below = tuple(i for i, want in enumerate(lanes) if want is not None and started[i])
        rows.append(
            _Row(
                lane,
                tuple(a for a in active if a != lane and a not in merged),
                merged,
                encode_id(rec.id),
                tuple(branches_at.get(rec.id, ())),
                tuple(tags_at.get(rec.id, ())),
                rec.message,
                below,
            )
        )
    return AncestryGraph(rows, max(1, len(lanes)), plain)
