"""The persisted repository config, laid out as the real Icechunk 2.3 stores it.

The real Icechunk serializes its ``RepositoryConfig`` struct with serde: every field, in struct
order, ``null`` for unset ones, enums externally tagged. Spec 1 keeps it as YAML in
``$ROOT/config.yaml`` (enum variants as YAML tags: ``!s3``, ``!Axis 1``, ``!or``); spec 2 as
FlexBuffers in the ``config`` field of the ``repo`` object (variants as one-key maps:
``{"Axis": 1}``, unit variants as strings: ``"any_array"``). :func:`config_to_doc` and
:func:`doc_to_config` convert between :class:`~icechunk.config.RepositoryConfig` and that
document; the ``encode_*`` / ``decode_*`` helpers add the two encodings.

Settings classes this library does not define (yet) are decoded into :class:`PersistedSettings`,
a plain record that encodes back to the same document, so nothing a real Icechunk persisted is
lost when we save the config again.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any, Final

from icechunk.config import (
    CachingConfig,
    CompressionAlgorithm,
    CompressionConfig,
    ManifestConfig,
    ManifestSplitCondition,
    ManifestSplitDimCondition,
    ManifestSplittingConfig,
    RepositoryConfig,
)
from icechunk.errors import ErrorKind, FormatError

__all__ = [
    "PersistedSettings",
    "config_to_doc",
    "decode_flexbuffers",
    "decode_yaml",
    "doc_to_config",
    "encode_flexbuffers",
    "encode_yaml",
]

# struct name -> its fields in serde order; "(Name)" marks a nested struct
_STRUCTS: Final[dict[str, tuple[str, ...]]] = {
    "CompressionConfig": ("algorithm", "level"),
    "CachingConfig": (
        "num_snapshot_nodes",
        "num_chunk_refs",
        "num_transaction_changes",
        "num_bytes_attributes",
        "num_bytes_chunks",
    ),
    "StorageConcurrencySettings": (
        "max_concurrent_requests_for_object",
        "ideal_concurrent_request_size",
    ),
    "StorageRetriesSettings": ("max_tries", "initial_backoff_ms", "max_backoff_ms"),
    "StorageTimeoutSettings": (
        "connect_timeout_ms",
        "read_timeout_ms",
        "operation_timeout_ms",
        "operation_attempt_timeout_ms",
    ),
    "StorageSettings": (
        "concurrency",
        "retries",
        "timeouts",
        "unsafe_use_conditional_update",
        "unsafe_use_conditional_create",
        "unsafe_use_metadata",
        "storage_class",
        "metadata_storage_class",
        "chunks_storage_class",
        "minimum_size_for_multipart_upload",
    ),
    "ManifestPreloadConfig": ("max_total_refs", "preload_if", "max_arrays_to_scan"),
    "ManifestVirtualChunkLocationCompressionConfig": (
        "min_num_chunks",
        "dictionary_max_training_samples",
        "dictionary_max_size_bytes",
        "compression_level",
    ),
    "RepoUpdateRetryConfig": ("default",),
}
_NESTED: Final[dict[tuple[str, str], str]] = {
    ("StorageSettings", "concurrency"): "StorageConcurrencySettings",
    ("StorageSettings", "retries"): "StorageRetriesSettings",
    ("StorageSettings", "timeouts"): "StorageTimeoutSettings",
    ("RepoUpdateRetryConfig", "default"): "StorageRetriesSettings",
}
_TOP: Final = (
    "inline_chunk_threshold_bytes",
    "get_partial_values_concurrency",
    "compression",
    "max_concurrent_requests",
    "max_concurrent_decodes",
    "caching",
    "storage",
    "virtual_chunk_containers",
    "manifest",
    "previous_file",
    "repo_update_retries",
    "num_updates_per_repo_info_file",
)
_MANIFEST: Final = (
    "preload",
    "splitting",
    "virtual_chunk_location_compression",
    "max_concurrent_manifest_fetches_during_commit",
)


class PersistedSettings:
    """A persisted settings struct of a kind this library has no class for, kept verbatim.

    Its fields are attributes; it encodes back to the same document.
    """

    def __init__(self, kind: str, fields: Mapping[str, Any]) -> None:
        self._kind = kind
        self._fields = dict(fields)
        for name, value in self._fields.items():
            setattr(self, name, value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PersistedSettings):
            return NotImplemented
        return (self._kind, self._fields) == (other._kind, other._fields)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._fields.items())
        return f"{self._kind}({inner})"


def _settings_class(kind: str) -> Any:
    for module in ("icechunk.config", "icechunk.storage", "icechunk"):
        try:
            cls = getattr(importlib.import_module(module), kind, None)
        except ImportError:
            continue
        if cls is not None:
            return cls
    return None


# -- to the document ------------------------------------------------------------------------


def _struct_doc(kind: str, obj: Any) -> Any:
    if obj is None:
        return None
    out: dict[str, Any] = {}
    for name in _STRUCTS[kind]:
        value = getattr(obj, name, None)
        nested = _NESTED.get((kind, name))
        if nested is not None:
            out[name] = _struct_doc(nested, value)
        elif kind == "CompressionConfig" and name == "algorithm":
            out[name] = None if value is None else "zstd"
        elif kind == "ManifestPreloadConfig" and name == "preload_if":
            out[name] = _to_json(value)
        else:
            out[name] = value
    return out


def _to_json(value: Any) -> Any:
    if value is None:
        return None
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    if isinstance(value, PersistedSettings):
        return value._fields.get("doc", value._fields)
    return value


def _splitting_doc(splitting: ManifestSplittingConfig | None) -> Any:
    return None if splitting is None else splitting.to_json()


def _containers_doc(containers: Mapping[str, Any] | None) -> Any:
    if containers is None:
        return None
    from icechunk.virtual import _store_doc

    out: dict[str, Any] = {}
    for key, c in containers.items():
        store = _store_doc(c.store)
        if store is None:
            store = _other_store_doc(c.store)
        out[key] = {"name": c.name, "url_prefix": c.url_prefix, "store": store}
    return out


def _other_store_doc(store: Any) -> Any:
    """GCS, Azure and in-memory stores (``virtual._store_doc`` leaves them out)."""
    kind = type(store).__name__
    if kind == "Gcs":
        return {"gcs": dict(getattr(store, "opts", None) or {})}
    if kind == "Azure":
        # as the real Icechunk, only the options are persisted (not the account)
        return {"azure": dict(getattr(store, "config", None) or getattr(store, "opts", None) or {})}
    if kind == "InMemory":
        return "in_memory"
    if isinstance(store, PersistedSettings):
        return store._fields
    return None


def config_to_doc(config: RepositoryConfig) -> dict[str, Any]:
    """The serde document of ``config``: every field in struct order, ``None`` when unset."""
    manifest = config.manifest
    manifest_doc = None
    if manifest is not None:
        manifest_doc = {
            "preload": _struct_doc("ManifestPreloadConfig", manifest.preload),
            "splitting": _splitting_doc(manifest.splitting),
            "virtual_chunk_location_compression": _struct_doc(
                "ManifestVirtualChunkLocationCompressionConfig",
                manifest.virtual_chunk_location_compression,
            ),
            "max_concurrent_manifest_fetches_during_commit": (
                manifest.max_concurrent_manifest_fetches_during_commit
            ),
        }
    values = {
        "inline_chunk_threshold_bytes": config.inline_chunk_threshold_bytes,
        "get_partial_values_concurrency": config.get_partial_values_concurrency,
        "compression": _struct_doc("CompressionConfig", config.compression),
        "max_concurrent_requests": config.max_concurrent_requests,
        "max_concurrent_decodes": config.max_concurrent_decodes,
        "caching": _struct_doc("CachingConfig", config.caching),
        "storage": _struct_doc("StorageSettings", config.storage),
        "virtual_chunk_containers": _containers_doc(config.virtual_chunk_containers),
        "manifest": manifest_doc,
        "previous_file": getattr(config, "previous_file", None),
        "repo_update_retries": _struct_doc("RepoUpdateRetryConfig", config.repo_update_retries),
        "num_updates_per_repo_info_file": config.num_updates_per_repo_info_file,
    }
    return {name: values[name] for name in _TOP}


# -- from the document ----------------------------------------------------------------------


def _bad(detail: str) -> FormatError:
    return FormatError(f"invalid persisted repository config: {detail}", ErrorKind.FORMAT)


def _struct_from(kind: str, doc: Any) -> Any:
    if doc is None:
        return None
    if not isinstance(doc, Mapping):
        raise _bad(f"{kind} must be a map, got {doc!r}")
    kwargs: dict[str, Any] = {}
    for name in _STRUCTS[kind]:
        value = doc.get(name)
        nested = _NESTED.get((kind, name))
        if nested is not None:
            value = _struct_from(nested, value)
        elif kind == "CompressionConfig" and name == "algorithm":
            value = None if value is None else CompressionAlgorithm.Zstd
        elif kind == "ManifestPreloadConfig" and name == "preload_if":
            value = _preload_condition(value)
        kwargs[name] = value
    if kind == "CompressionConfig":
        return CompressionConfig(**kwargs)
    if kind == "CachingConfig":
        return CachingConfig(**kwargs)
    cls = _settings_class(kind)
    if cls is not None:
        try:
            return cls(**{k: v for k, v in kwargs.items() if v is not None})
        except (TypeError, ValueError):
            pass
    return PersistedSettings(kind, kwargs)


def _preload_condition(doc: Any) -> Any:
    if doc is None:
        return None
    cls = _settings_class("ManifestPreloadCondition")
    if cls is None:
        return PersistedSettings("ManifestPreloadCondition", {"doc": doc})
    if doc == "true":
        return cls.true()
    if doc == "false":
        return cls.false()
    if isinstance(doc, Mapping) and len(doc) == 1:
        ((tag, body),) = doc.items()
        if tag in ("or", "and") and isinstance(body, list):
            conds = [_preload_condition(c) for c in body]
            return cls.or_conditions(conds) if tag == "or" else cls.and_conditions(conds)
        if tag in ("path_matches", "name_matches") and isinstance(body, Mapping):
            return getattr(cls, tag)(body["regex"])
        if tag == "num_refs" and isinstance(body, Mapping):

            def bound(b: Any, inclusive: str) -> int | None:
                if isinstance(b, Mapping):
                    ((k, v),) = b.items()
                    return int(v) if k == inclusive else int(v) + (1 if k == "Excluded" else -1)
                return None

            return cls.num_refs(
                bound(body.get("from"), "Included"), bound(body.get("to"), "Excluded")
            )
    raise _bad(f"unknown manifest preload condition {doc!r}")


def _split_condition(doc: Any) -> ManifestSplitCondition:
    if doc == "any_array":
        return ManifestSplitCondition.AnyArray()
    if isinstance(doc, Mapping) and len(doc) == 1:
        ((tag, body),) = doc.items()
        if tag in ("or", "and") and isinstance(body, list):
            conds = [_split_condition(c) for c in body]
            if tag == "or":
                return ManifestSplitCondition.or_conditions(conds)
            return ManifestSplitCondition.and_conditions(conds)
        if tag in ("path_matches", "name_matches") and isinstance(body, Mapping):
            method = getattr(ManifestSplitCondition, tag)
            cond = method(str(body["regex"]))
            assert isinstance(cond, ManifestSplitCondition)
            return cond
    raise _bad(f"unknown manifest split condition {doc!r}")


def _dim_condition(doc: Any) -> ManifestSplitDimCondition:
    if doc == "Any":
        return ManifestSplitDimCondition.Any()
    if isinstance(doc, Mapping) and len(doc) == 1:
        ((tag, body),) = doc.items()
        if tag == "Axis":
            return ManifestSplitDimCondition.Axis(int(body))
        if tag == "DimensionName":
            return ManifestSplitDimCondition.DimensionName(str(body))
    raise _bad(f"unknown manifest split dimension condition {doc!r}")


def _splitting_from(doc: Any) -> ManifestSplittingConfig | None:
    if doc is None:
        return None
    sizes = doc.get("split_sizes") if isinstance(doc, Mapping) else None
    if not isinstance(sizes, list):
        raise _bad(f"manifest splitting must have `split_sizes`, got {doc!r}")
    out = []
    for item in sizes:
        cond, dims = item
        out.append(
            (
                _split_condition(cond),
                [(_dim_condition(d["condition"]), int(d["num_chunks"])) for d in dims],
            )
        )
    return ManifestSplittingConfig(out)


def _containers_from(doc: Any) -> dict[str, Any] | None:
    if doc is None:
        return None
    from icechunk.virtual import VirtualChunkContainer, _persisted_store

    out: dict[str, Any] = {}
    for key, item in doc.items():
        store_doc = item.get("store")
        store = _persisted_store(store_doc)
        if store is None:
            store = _other_store(store_doc)
        if store is None:
            raise _bad(f"unknown virtual chunk container store {store_doc!r}")
        out[str(key)] = VirtualChunkContainer(str(item["url_prefix"]), store, item.get("name"))
    return out


def _other_store(doc: Any) -> Any:
    from icechunk.virtual import ObjectStoreConfig

    if doc == "in_memory":
        return ObjectStoreConfig.InMemory()
    if isinstance(doc, Mapping) and len(doc) == 1:
        ((tag, body),) = doc.items()
        if tag == "azure":
            opts = {str(k): str(v) for k, v in (body or {}).items()}
            return ObjectStoreConfig.Azure("", opts or None)
    return None


def doc_to_config(doc: Any) -> RepositoryConfig:
    """The :class:`RepositoryConfig` of a persisted serde document (unknown keys are ignored).

    Raises
    ------
    FormatError
        The document is not a map, or a field has a shape the real Icechunk never writes.
    """
    if not isinstance(doc, Mapping):
        raise _bad(f"expected a map, got {type(doc).__name__}")
    manifest_doc = doc.get("manifest")
    manifest = None
    if manifest_doc is not None:
        manifest = ManifestConfig(
            preload=_struct_from("ManifestPreloadConfig", manifest_doc.get("preload")),
            splitting=_splitting_from(manifest_doc.get("splitting")),
            virtual_chunk_location_compression=_struct_from(
                "ManifestVirtualChunkLocationCompressionConfig",
                manifest_doc.get("virtual_chunk_location_compression"),
            ),
            max_concurrent_manifest_fetches_during_commit=manifest_doc.get(
                "max_concurrent_manifest_fetches_during_commit"
            ),
        )
    config = RepositoryConfig(
        inline_chunk_threshold_bytes=doc.get("inline_chunk_threshold_bytes"),
        get_partial_values_concurrency=doc.get("get_partial_values_concurrency"),
        compression=_struct_from("CompressionConfig", doc.get("compression")),
        max_concurrent_requests=doc.get("max_concurrent_requests"),
        caching=_struct_from("CachingConfig", doc.get("caching")),
        storage=_struct_from("StorageSettings", doc.get("storage")),
        virtual_chunk_containers=_containers_from(doc.get("virtual_chunk_containers")),
        manifest=manifest,
        repo_update_retries=_struct_from("RepoUpdateRetryConfig", doc.get("repo_update_retries")),
        num_updates_per_repo_info_file=doc.get("num_updates_per_repo_info_file"),
        max_concurrent_decodes=doc.get("max_concurrent_decodes"),
    )
    previous = doc.get("previous_file")
    if previous is not None:
        config._extra["previous_file"] = previous
    return config


# -- encodings ------------------------------------------------------------------------------


def encode_flexbuffers(config: RepositoryConfig) -> bytes:
    """The spec-2 ``Repo.config`` bytes of ``config``."""
    from flatbuffers import flexbuffers

    return bytes(flexbuffers.Dumps(config_to_doc(config)))


def decode_flexbuffers(data: bytes) -> RepositoryConfig:
    from flatbuffers import flexbuffers

    try:
        doc = flexbuffers.Loads(data)
    except Exception as e:  # noqa: BLE001 - any decoding failure is a format error
        raise _bad(f"cannot decode the FlexBuffers config: {e}") from None
    return doc_to_config(doc)


class _Tagged:
    """A serde enum variant with data, written as a YAML tag (``!Axis 1``)."""

    __slots__ = ("tag", "value")

    def __init__(self, tag: str, value: Any) -> None:
        self.tag = tag
        self.value = value


# variant names that serde writes as YAML tags (the others are plain maps)
_VARIANTS: Final = frozenset(
    {
        "or",
        "and",
        "path_matches",
        "name_matches",
        "num_refs",
        "Axis",
        "DimensionName",
        "Included",
        "Excluded",
        "local_file_system",
        "s3",
        "s3_compatible",
        "tigris",
        "gcs",
        "azure",
        "http",
    }
)


def _tag_variants(doc: Any) -> Any:
    if isinstance(doc, Mapping):
        if len(doc) == 1:
            ((key, value),) = doc.items()
            if key in _VARIANTS:
                return _Tagged(key, _tag_variants(value))
        return {k: _tag_variants(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_tag_variants(v) for v in doc]
    return doc


def encode_yaml(config: RepositoryConfig) -> bytes:
    """The spec-1 ``config.yaml`` bytes of ``config``, as serde_yaml writes them."""
    import yaml

    class Dumper(yaml.SafeDumper):  # type: ignore[misc]  # untyped library
        pass

    def tagged(dumper: yaml.SafeDumper, data: _Tagged) -> yaml.Node:
        tag = "!" + data.tag
        if isinstance(data.value, Mapping):
            return dumper.represent_mapping(tag, data.value)
        if isinstance(data.value, list):
            return dumper.represent_sequence(tag, data.value)
        node = dumper.represent_data(data.value)
        return yaml.ScalarNode(tag, node.value, style=getattr(node, "style", None))

    Dumper.add_representer(_Tagged, tagged)
    text = yaml.dump(
        _tag_variants(config_to_doc(config)),
        Dumper=Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
    )
    # PyYAML quotes tagged integers (`!Axis '1'`); serde_yaml writes them plain (`!Axis 1`)
    text = _TAGGED_INT.sub(r"\1 \2", text)
    return text.encode("utf-8")


_TAGGED_INT: Final = re.compile(r"(!(?:Axis|Included|Excluded)) '(-?\d+)'")


def load_yaml_doc(data: bytes | str) -> Any:
    """The serde document of a ``config.yaml`` (YAML tags become one-key maps)."""
    import yaml

    class Loader(yaml.SafeLoader):  # type: ignore[misc]  # untyped library
        pass

    def variant(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        value: Any
        if isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            assert isinstance(node, yaml.ScalarNode)
            value = yaml.safe_load(node.value) if node.value != "" else None
            if node.style in ("'", '"'):
                value = node.value
        return {suffix: value}

    Loader.add_multi_constructor("!", variant)
    try:
        return yaml.load(data, Loader=Loader)
    except yaml.YAMLError as e:
        raise _bad(f"cannot parse config.yaml: {e}") from None


def decode_yaml(data: bytes | str) -> RepositoryConfig:
    return doc_to_config(load_yaml_doc(data))
