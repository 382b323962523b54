"""The factories of the cloud storages, shaped like the real Icechunk's.

:func:`s3_storage`, :func:`tigris_storage`, :func:`r2_storage`, :func:`hf_storage`,
:func:`gcs_storage` and :func:`azure_storage` turn the real Icechunk's keyword arguments into
credential values (:mod:`icechunk.storage._credentials`) and call the builders below, which are
also what ``Storage.new_s3`` & co. call: each maps options and credentials onto an
:class:`~icechunk.storage._obstore.ObjectStoreStorage` (obstore configuration, client options,
credential provider). Importing this module imports obstore.

The S3 family (S3, Tigris, R2) lives in :mod:`icechunk.storage._factories_s3`, GCS and Azure in
:mod:`icechunk.storage._factories_cloud`, the shared option helpers in
:mod:`icechunk.storage._factories_common`; this module keeps Hugging Face and re-exports them all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.storage._credentials import (
    AnyS3Credential,
    S3StaticCredentials,
    s3_credentials,
)
from icechunk.storage._factories_cloud import (  # noqa: F401 - re-exported
    _azure_credential_config,
    _constant,
    _gcs_credential_config,
    azure_storage,
    gcs_storage,
    new_azure_blob,
    new_gcs,
)
from icechunk.storage._factories_common import (  # noqa: F401 - re-exported
    _check_rooted,
    _client_options,
    _headers,
    _options,
)
from icechunk.storage._factories_s3 import (  # noqa: F401 - re-exported
    _TIGRIS_ENDPOINT,
    _s3_credential_config,
    new_r2,
    new_s3,
    new_tigris,
    r2_storage,
    s3_storage,
    s3_storage_from_options,
    tigris_storage,
)
from icechunk.storage._obstore import ObjectStoreStorage

__all__ = [
    "azure_storage",
    "gcs_storage",
    "hf_storage",
    "new_azure_blob",
    "new_gcs",
    "new_s3",
    "r2_storage",
    "s3_storage",
    "s3_storage_from_options",
    "tigris_storage",
]

_HF_ENDPOINT = "https://s3.hf.co"


def new_hf(
    config: Any,
    bucket: str,
    prefix: str | None,
    namespace: str,
    credentials: AnyS3Credential | None = None,
    legacy_rooted_keys: bool | None = None,
    *,
    read_headers: Mapping[str, str] | None = None,
    write_headers: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ObjectStoreStorage:
    """A Hugging Face storage bucket through its S3 gateway ``https://s3.hf.co/<namespace>``
    (region ``us-east-1``, path style), unless ``config.endpoint_url`` overrides it.

    Raises
    ------
    InvalidInputError
        An empty or ``/``-containing namespace.
    """
    if not namespace or "/" in namespace:
        raise InvalidInputError(
            f"hf_storage: namespace must be a Hugging Face user or organization name, "
            f"not {namespace!r}",
            ErrorKind.INVALID_ARGUMENT,
        )
    return new_s3(
        config,
        bucket,
        prefix,
        credentials,
        legacy_rooted_keys,
        read_headers=read_headers,
        write_headers=write_headers,
        headers=headers,
        default_region="us-east-1",
        default_endpoint=f"{_HF_ENDPOINT}/{namespace}",
        path_style=True,
    )


def hf_storage(
    *,
    bucket: str,
    prefix: str | None,
    namespace: str,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    expires_after: datetime | None = None,
    from_env: bool | None = None,
    get_credentials: Callable[[], S3StaticCredentials] | None = None,
    scatter_initial_credentials: bool = False,
    network_stream_timeout_seconds: int = 60,
    legacy_rooted_keys: bool | None = None,
    read_headers: dict[str, str] | None = None,
    write_headers: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> ObjectStoreStorage:
    """Storage in a Hugging Face storage bucket (see :func:`new_hf`); S3 credentials
    generated from a Hugging Face token, as :func:`s3_storage` takes them."""
    credentials = s3_credentials(
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        session_token=session_token,
        expires_after=expires_after,
        from_env=from_env,
        get_credentials=get_credentials,
        scatter_initial_credentials=scatter_initial_credentials,
    )
    return new_hf(
        _options(None, None, False, False, True, network_stream_timeout_seconds),
        bucket,
        prefix,
        namespace,
        credentials,
        legacy_rooted_keys,
        read_headers=read_headers,
        write_headers=write_headers,
        headers=headers,
    )
