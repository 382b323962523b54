"""The factories of the cloud storages, shaped like the real Icechunk's.

:func:`s3_storage`, :func:`gcs_storage` and :func:`azure_storage` turn the real Icechunk's keyword
arguments into an :class:`~icechunk.storage._obstore.ObjectStoreStorage` (obstore configuration,
client options, credential provider). Importing this module imports obstore.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.storage._credentials import (
    AzureRefreshableCredential,
    GcsBearerCredential,
    S3StaticCredentials,
    StoreKind,
    _CredentialBridge,
)
from icechunk.storage._obstore import ObjectStoreStorage
from icechunk.storage._settings import StorageRetriesSettings

__all__ = ["azure_storage", "gcs_storage", "s3_storage"]


def _client_options(allow_http: bool, network_stream_timeout_seconds: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "allow_http": bool(allow_http),
        "connect_timeout": timedelta(seconds=5),
        "timeout": timedelta(minutes=10),
    }
    if network_stream_timeout_seconds:
        options["read_timeout"] = timedelta(seconds=network_stream_timeout_seconds)
    return options


def _one_credential_source(**sources: object) -> None:
    given = [name for name, value in sources.items() if value]
    if len(given) > 1:
        raise InvalidInputError(
            f"choose one credential source, not {' and '.join(given)}", ErrorKind.INVALID_ARGUMENT
        )


def _bridge(
    kind: StoreKind, get_credentials: Callable[[], Any] | None, scatter: bool
) -> _CredentialBridge | None:
    if get_credentials is None:
        return None
    if not callable(get_credentials):
        raise InvalidInputError("get_credentials must be a callable")
    return _CredentialBridge(kind, get_credentials, get_credentials() if scatter else None)


def s3_storage(
    *,
    bucket: str,
    prefix: str | None,
    region: str | None = None,
    endpoint_url: str | None = None,
    allow_http: bool = False,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    expires_after: datetime | None = None,
    anonymous: bool | None = None,
    from_env: bool | None = None,
    get_credentials: Callable[[], S3StaticCredentials] | None = None,
    scatter_initial_credentials: bool = False,
    force_path_style: bool = False,
    network_stream_timeout_seconds: int = 60,
    requester_pays: bool = False,
    retries: StorageRetriesSettings | None = None,
    max_concurrent_requests: int = 64,
    check_bucket: bool = True,
) -> ObjectStoreStorage:
    """Storage in an S3 bucket, or in any S3-compatible server (MinIO, SeaweedFS, Ceph ...).

    Parameters
    ----------
    bucket, prefix
        Where the repository lives: ``s3://<bucket>/<prefix>``.
    region
        The bucket's region; inferred from the environment (``AWS_REGION``) when ``None``.
    endpoint_url
        A non-AWS endpoint such as ``http://127.0.0.1:9000``.
    allow_http
        Allow plain-HTTP endpoints.
    access_key_id, secret_access_key, session_token, expires_after
        Static credentials (``expires_after`` is informational for static credentials).
    anonymous
        Send unsigned requests (public buckets).
    from_env
        Take credentials from the environment and instance metadata (also the default when no
        credentials are given).
    get_credentials, scatter_initial_credentials
        A picklable callable returning :class:`S3StaticCredentials`, called again when they
        expire. With ``scatter_initial_credentials`` it is called once now and the result travels
        with every pickled copy.
    force_path_style
        Address the bucket as ``<endpoint>/<bucket>`` rather than ``<bucket>.<endpoint>``. With
        a custom ``endpoint_url`` path style is always used (as obstore expects the bucket in a
        virtual-hosted endpoint URL).
    network_stream_timeout_seconds
        Fail a request whose connection stays silent this long; ``0`` disables the check.
    requester_pays
        Accept requester-pays charges.
    retries, max_concurrent_requests
        Retry policy and concurrency bound (extensions of this library).
    check_bucket
        List the root once per process so that a missing bucket is reported as such (an
        extension; turn it off for buckets that do not grant listing).
    """
    _one_credential_source(
        static_credentials=access_key_id or secret_access_key,
        anonymous=anonymous,
        from_env=from_env,
        get_credentials=get_credentials,
    )
    if bool(access_key_id) != bool(secret_access_key):
        raise InvalidInputError("access_key_id and secret_access_key must be given together")
    config: dict[str, Any] = {"conditional_put": "etag"}
    if region:
        config["region"] = region
    if endpoint_url:
        config["endpoint"] = endpoint_url.rstrip("/")
        config["virtual_hosted_style_request"] = False
    else:
        config["virtual_hosted_style_request"] = not force_path_style
    if access_key_id and secret_access_key:
        config["access_key_id"] = access_key_id
        config["secret_access_key"] = secret_access_key
        if session_token:
            config["session_token"] = session_token
    if anonymous:
        config["skip_signature"] = True
    if requester_pays:
        config["request_payer"] = True
    del expires_after  # static credentials are used as given
    return ObjectStoreStorage(
        "s3",
        bucket,
        prefix or "",
        config,
        _client_options(allow_http, network_stream_timeout_seconds),
        retries=retries,
        credential_provider=_bridge("s3", get_credentials, scatter_initial_credentials),
        max_concurrent_requests=max_concurrent_requests,
        check_bucket=check_bucket,
    )


def gcs_storage(
    *,
    bucket: str,
    prefix: str | None,
    service_account_file: str | None = None,
    service_account_key: str | None = None,
    application_credentials: str | None = None,
    bearer_token: str | None = None,
    anonymous: bool | None = None,
    from_env: bool | None = None,
    config: dict[str, str] | None = None,
    get_credentials: Callable[[], GcsBearerCredential] | None = None,
    scatter_initial_credentials: bool = False,
    retries: StorageRetriesSettings | None = None,
    max_concurrent_requests: int = 64,
) -> ObjectStoreStorage:
    """Storage in a Google Cloud Storage bucket.

    ``config`` takes further obstore ``GCSConfig`` options (``base_url`` for an emulator, for
    instance); the other parameters are as in the real Icechunk's ``gcs_storage``.
    """
    _one_credential_source(
        service_account_file=service_account_file,
        service_account_key=service_account_key,
        application_credentials=application_credentials,
        bearer_token=bearer_token,
        anonymous=anonymous,
        from_env=from_env,
        get_credentials=get_credentials,
    )
    options: dict[str, Any] = dict(config or {})
    if service_account_file:
        options["service_account"] = service_account_file
    if service_account_key:
        options["service_account_key"] = service_account_key
    if application_credentials:
        options["application_credentials"] = application_credentials
    if bearer_token:
        options["bearer_token"] = bearer_token
    if anonymous:
        options["skip_signature"] = True
    base_url = str(options.get("base_url", ""))
    return ObjectStoreStorage(
        "gcs",
        bucket,
        prefix or "",
        options,
        _client_options(base_url.startswith("http://"), 60),
        retries=retries,
        credential_provider=_bridge("gcs", get_credentials, scatter_initial_credentials),
        max_concurrent_requests=max_concurrent_requests,
    )


def azure_storage(
    *,
    account: str,
    container: str,
    prefix: str | None,
    access_key: str | None = None,
    sas_token: str | None = None,
    bearer_token: str | None = None,
    from_env: bool | None = None,
    anonymous: bool | None = None,
    config: dict[str, str] | None = None,
    get_credentials: Callable[[], AzureRefreshableCredential] | None = None,
    scatter_initial_credentials: bool = False,
    retries: StorageRetriesSettings | None = None,
    max_concurrent_requests: int = 64,
) -> ObjectStoreStorage:
    """Storage in an Azure Blob Storage container.

    ``config`` takes further obstore ``AzureConfig`` options (``use_emulator`` and ``endpoint``
    for Azurite, for instance); the other parameters are as in the real Icechunk's
    ``azure_storage``.
    """
    _one_credential_source(
        access_key=access_key,
        sas_token=sas_token,
        bearer_token=bearer_token,
        from_env=from_env,
        anonymous=anonymous,
        get_credentials=get_credentials,
    )
    options: dict[str, Any] = {"account_name": account, **(config or {})}
    if access_key:
        options["account_key"] = access_key
    if sas_token:
        options["sas_key"] = sas_token
    if bearer_token:
        options["token"] = bearer_token
    if anonymous:
        options["skip_signature"] = True
    endpoint = str(options.get("endpoint", ""))
    emulator = str(options.get("use_emulator", "")).lower() in ("true", "1")
    return ObjectStoreStorage(
        "azure",
        container,
        prefix or "",
        options,
        _client_options(endpoint.startswith("http://") or emulator, 60),
        retries=retries,
        credential_provider=_bridge("azure", get_credentials, scatter_initial_credentials),
        max_concurrent_requests=max_concurrent_requests,
    )
