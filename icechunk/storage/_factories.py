"""The factories of the cloud storages, shaped like the real Icechunk's.

:func:`s3_storage`, :func:`tigris_storage`, :func:`r2_storage`, :func:`hf_storage`,
:func:`gcs_storage` and :func:`azure_storage` turn the real Icechunk's keyword arguments into
credential values (:mod:`icechunk.storage._credentials`) and call the builders below, which are
also what ``Storage.new_s3`` & co. call: each maps options and credentials onto an
:class:`~icechunk.storage._obstore.ObjectStoreStorage` (obstore configuration, client options,
credential provider). Importing this module imports obstore.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from icechunk.errors import ErrorKind, InvalidInputError, StorageError
from icechunk.storage._credentials import (
    AnyAzureCredential,
    AnyAzureRefreshableCredential,
    AnyGcsCredential,
    AnyS3Credential,
    AzureCredentials,
    AzureStaticCredentials,
    GcsBearerCredential,
    GcsCredentials,
    GcsStaticCredentials,
    S3Credentials,
    S3StaticCredentials,
    _CredentialBridge,
    azure_credentials,
    gcs_credentials,
    s3_credentials,
)
from icechunk.storage._obstore import ObjectStoreStorage
from icechunk.storage._settings import StorageRetriesSettings

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
_TIGRIS_ENDPOINT = "https://t3.storage.dev"


def _client_options(
    allow_http: bool, network_stream_timeout_seconds: int | None, headers: Mapping[str, str]
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "allow_http": bool(allow_http),
        "connect_timeout": timedelta(seconds=5),
        "timeout": timedelta(minutes=10),
    }
    if network_stream_timeout_seconds:
        options["read_timeout"] = timedelta(seconds=network_stream_timeout_seconds)
    if headers:
        options["default_headers"] = dict(headers)
    return options


def _headers(
    read_headers: Mapping[str, str] | None,
    write_headers: Mapping[str, str] | None,
    headers: Mapping[str, str] | None,
) -> dict[str, str]:
    """One header set for every request: obstore has no per-operation headers, so read and
    write headers are both sent on every request (``read_headers`` win over ``write_headers``,
    both over ``headers``)."""
    out: dict[str, str] = {}
    for part in (headers, write_headers, read_headers):
        for name, value in (part or {}).items():
            if not isinstance(name, str) or not isinstance(value, str):  # type: ignore[redundant-expr]
                raise InvalidInputError(
                    f"HTTP headers must map str to str, got {name!r}: {value!r}",
                    ErrorKind.INVALID_ARGUMENT,
                )
            out[name] = value
    return out


def _check_rooted(legacy_rooted_keys: bool | None, prefix: str | None) -> None:
    if legacy_rooted_keys and (prefix or "").strip("/"):
        raise StorageError("storage error: legacy_rooted_keys is only valid with an empty prefix")
    if legacy_rooted_keys:
        raise StorageError(
            "legacy_rooted_keys=True (the leading-slash key layout of old bucket-root "
            "repositories) is not supported by this library; open the repository with the "
            "real icechunk, or leave legacy_rooted_keys unset"
        )


def _s3_credential_config(
    credentials: AnyS3Credential | None, config: dict[str, Any]
) -> _CredentialBridge | None:
    match credentials:
        case None | S3Credentials.FromEnv():
            return None
        case S3Credentials.Anonymous():
            config["skip_signature"] = True
            return None
        case S3Credentials.Static(_0=static):
            config["access_key_id"] = static.access_key_id
            config["secret_access_key"] = static.secret_access_key
            if static.session_token:
                config["session_token"] = static.session_token
            return None
        case S3Credentials.Refreshable():
            return _CredentialBridge.of("s3", credentials)
    raise InvalidInputError(
        f"S3 storage needs S3 credentials (an S3Credentials variant), got "
        f"{type(credentials).__name__}",
        ErrorKind.INVALID_ARGUMENT,
    )


def new_s3(
    config: Any,
    bucket: str,
    prefix: str | None,
    credentials: AnyS3Credential | None = None,
    legacy_rooted_keys: bool | None = None,
    *,
    read_headers: Mapping[str, str] | None = None,
    write_headers: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    default_region: str | None = None,
    default_endpoint: str | None = None,
    path_style: bool | None = None,
    retries: StorageRetriesSettings | None = None,
    max_concurrent_requests: int = 64,
    check_bucket: bool = True,
    read_only: bool = False,
) -> ObjectStoreStorage:
    """An S3 (or S3-compatible) storage from ``S3Options``-shaped ``config`` and credentials.

    ``config`` is read by attribute (``region``, ``endpoint_url``, ``allow_http``,
    ``anonymous``, ``force_path_style``, ``network_stream_timeout_seconds``,
    ``requester_pays``). The keyword-only extras after ``headers`` serve the flavoured
    factories (Tigris, R2, Hugging Face) and this library's retry and concurrency bounds.
    """
    _check_rooted(legacy_rooted_keys, prefix)
    options: dict[str, Any] = {"conditional_put": "etag"}
    region = getattr(config, "region", None) or default_region
    if region:
        options["region"] = region
    endpoint = getattr(config, "endpoint_url", None) or default_endpoint
    if endpoint:
        options["endpoint"] = str(endpoint).rstrip("/")
        # obstore expects the bucket in a virtual-hosted endpoint URL: path style with one.
        options["virtual_hosted_style_request"] = False
    else:
        force = getattr(config, "force_path_style", False) if path_style is None else path_style
        options["virtual_hosted_style_request"] = not force
    if getattr(config, "requester_pays", False):
        options["request_payer"] = True
    if getattr(config, "anonymous", False) and credentials is None:
        credentials = S3Credentials.Anonymous()
    provider = _s3_credential_config(credentials, options)
    stream_timeout = getattr(config, "network_stream_timeout_seconds", None)
    return ObjectStoreStorage(
        "s3",
        bucket,
        prefix or "",
        options,
        _client_options(
            bool(getattr(config, "allow_http", False)),
            60 if stream_timeout is None else stream_timeout,
            _headers(read_headers, write_headers, headers),
        ),
        retries=retries,
        credential_provider=provider,
        max_concurrent_requests=max_concurrent_requests,
        check_bucket=check_bucket,
        read_only=read_only,
    )


s3_storage_from_options = new_s3
"""Public name of :func:`new_s3` for the layers above (virtual chunk containers)."""


def _options(
    region: str | None,
    endpoint_url: str | None,
    allow_http: bool,
    anonymous: bool | None,
    force_path_style: bool,
    network_stream_timeout_seconds: int | None,
    requester_pays: bool = False,
) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(
        region=region,
        endpoint_url=endpoint_url,
        allow_http=allow_http,
        anonymous=bool(anonymous),
        force_path_style=force_path_style,
        network_stream_timeout_seconds=network_stream_timeout_seconds,
        requester_pays=requester_pays,
    )


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
    checksum_algorithm: Any = None,
    legacy_rooted_keys: bool | None = None,
    read_headers: dict[str, str] | None = None,
    write_headers: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
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
        A non-AWS endpoint such as ``http://127.0.0.1:9000`` (path-style addressing).
    allow_http
        Allow plain-HTTP endpoints.
    access_key_id, secret_access_key, session_token, expires_after, anonymous, from_env, get_credentials, scatter_initial_credentials
        The credentials, as :func:`~icechunk.credentials.s3_credentials` takes them (from the
        environment when none are given).
    force_path_style
        Address the bucket as ``<endpoint>/<bucket>`` rather than ``<bucket>.<endpoint>``.
    network_stream_timeout_seconds
        Fail a request whose connection stays silent this long; ``0`` disables the check.
    requester_pays
        Accept requester-pays charges.
    checksum_algorithm
        Accepted for compatibility; obstore computes no extra request checksums.
    legacy_rooted_keys
        ``None``/``False``: the standard key layout. ``True`` (old bucket-root layout) is
        refused with a :class:`~icechunk.errors.StorageError`.
    read_headers, write_headers, headers
        Extra HTTP headers; all three are sent on every request (obstore has no
        per-operation headers).
    retries, max_concurrent_requests, check_bucket
        Extensions of this library: retry policy, concurrency bound, and whether to list the
        root once per process so that a missing bucket is reported as such.

    Raises
    ------
    ValueError
        Conflicting credential arguments.
    """
    credentials = s3_credentials(
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        session_token=session_token,
        expires_after=expires_after,
        anonymous=anonymous,
        from_env=from_env,
        get_credentials=get_credentials,
        scatter_initial_credentials=scatter_initial_credentials,
    )
    del checksum_algorithm
    return new_s3(
        _options(
            region,
            endpoint_url,
            allow_http,
            anonymous,
            force_path_style,
            network_stream_timeout_seconds,
            requester_pays,
        ),
        bucket,
        prefix,
        credentials,
        legacy_rooted_keys,
        read_headers=read_headers,
        write_headers=write_headers,
        headers=headers,
        retries=retries,
        max_concurrent_requests=max_concurrent_requests,
        check_bucket=check_bucket,
    )


def new_tigris(
    config: Any,
    bucket: str,
    prefix: str | None,
    use_weak_consistency: bool,
    credentials: AnyS3Credential | None = None,
    legacy_rooted_keys: bool | None = None,
    *,
    read_headers: Mapping[str, str] | None = None,
    write_headers: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ObjectStoreStorage:
    """A Tigris bucket (S3-compatible, endpoint ``https://t3.storage.dev`` by default).

    Full consistency needs the bucket's region; ``use_weak_consistency`` waives it (reads may
    come from a region the latest writes have not reached), and such a storage is read-only:
    its writes and deletes raise :class:`~icechunk.errors.StorageError`.

    Raises
    ------
    StorageError
        No region and no ``use_weak_consistency``.
    """
    if not getattr(config, "region", None) and not use_weak_consistency:
        raise StorageError(
            "storage error: Tigris storage requires a region to provide full consistency. "
            "Either set the region for the bucket or use the read-only, eventually consistent "
            "storage by passing `use_weak_consistency=True` (experts only)"
        )
    extra = dict(headers or {})
    if not use_weak_consistency:
        extra.setdefault("X-Tigris-Consistent", "true")
    return new_s3(
        config,
        bucket,
        prefix,
        credentials,
        legacy_rooted_keys,
        read_headers=read_headers,
        write_headers=write_headers,
        headers=extra,
        default_endpoint=_TIGRIS_ENDPOINT,
        default_region="auto",
        path_style=True,
        read_only=use_weak_consistency,
    )


def tigris_storage(
    *,
    bucket: str,
    prefix: str | None,
    region: str | None = None,
    endpoint_url: str | None = None,
    use_weak_consistency: bool = False,
    allow_http: bool = False,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    expires_after: datetime | None = None,
    anonymous: bool | None = None,
    from_env: bool | None = None,
    get_credentials: Callable[[], S3StaticCredentials] | None = None,
    scatter_initial_credentials: bool = False,
    network_stream_timeout_seconds: int = 60,
    checksum_algorithm: Any = None,
    legacy_rooted_keys: bool | None = None,
    read_headers: dict[str, str] | None = None,
    write_headers: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> ObjectStoreStorage:
    """Storage in a Tigris bucket; arguments as :func:`s3_storage` (see :func:`new_tigris`)."""
    credentials = s3_credentials(
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        session_token=session_token,
        expires_after=expires_after,
        anonymous=anonymous,
        from_env=from_env,
        get_credentials=get_credentials,
        scatter_initial_credentials=scatter_initial_credentials,
    )
    del checksum_algorithm
    return new_tigris(
        _options(region, endpoint_url, allow_http, anonymous, True, network_stream_timeout_seconds),
        bucket,
        prefix,
        use_weak_consistency,
        credentials,
        legacy_rooted_keys,
        read_headers=read_headers,
        write_headers=write_headers,
        headers=headers,
    )


def new_r2(
    config: Any,
    bucket: str | None = None,
    prefix: str | None = None,
    account_id: str | None = None,
    credentials: AnyS3Credential | None = None,
    legacy_rooted_keys: bool | None = None,
    *,
    read_headers: Mapping[str, str] | None = None,
    write_headers: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ObjectStoreStorage:
    """A Cloudflare R2 bucket: endpoint ``https://<account_id>.r2.cloudflarestorage.com``
    unless ``config.endpoint_url`` is given, region ``auto``. Without ``bucket``, the first
    segment of ``prefix`` is the bucket (as the real one).

    Raises
    ------
    StorageError
        Neither an endpoint nor an account id, or no bucket at all.
    """
    endpoint = getattr(config, "endpoint_url", None)
    if not endpoint and not account_id:
        raise StorageError(
            "storage configuration error: Either endpoint_url or account_id must be provided."
        )
    if not bucket:
        head, _, rest = (prefix or "").strip("/").partition("/")
        if not head:
            raise StorageError("storage configuration error: R2 storage needs a bucket")
        bucket, prefix = head, rest
    return new_s3(
        config,
        bucket,
        prefix,
        credentials,
        legacy_rooted_keys,
        read_headers=read_headers,
        write_headers=write_headers,
        headers=headers,
        default_region="auto",
        default_endpoint=None if endpoint else f"https://{account_id}.r2.cloudflarestorage.com",
        path_style=True,
    )


def r2_storage(
    *,
    bucket: str | None = None,
    prefix: str | None = None,
    account_id: str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    allow_http: bool = False,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    expires_after: datetime | None = None,
    anonymous: bool | None = None,
    from_env: bool | None = None,
    get_credentials: Callable[[], S3StaticCredentials] | None = None,
    scatter_initial_credentials: bool = False,
    network_stream_timeout_seconds: int = 60,
    checksum_algorithm: Any = None,
    legacy_rooted_keys: bool | None = None,
    read_headers: dict[str, str] | None = None,
    write_headers: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> ObjectStoreStorage:
    """Storage in a Cloudflare R2 bucket; arguments as :func:`s3_storage` (see :func:`new_r2`)."""
    credentials = s3_credentials(
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        session_token=session_token,
        expires_after=expires_after,
        anonymous=anonymous,
        from_env=from_env,
        get_credentials=get_credentials,
        scatter_initial_credentials=scatter_initial_credentials,
    )
    del checksum_algorithm
    return new_r2(
        _options(region, endpoint_url, allow_http, anonymous, True, network_stream_timeout_seconds),
        bucket,
        prefix,
        account_id,
        credentials,
        legacy_rooted_keys,
        read_headers=read_headers,
        write_headers=write_headers,
        headers=headers,
    )


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


def _gcs_credential_config(
    credentials: AnyGcsCredential | None, options: dict[str, Any]
) -> _CredentialBridge | None:
    """Map GCS credentials onto obstore ``GCSConfig`` keys (or a credential provider)."""
    match credentials:
        case None | GcsCredentials.FromEnv():
            return None
        case GcsCredentials.Anonymous():
            options["skip_signature"] = True
            return None
        case GcsCredentials.Static(_0=GcsStaticCredentials.ServiceAccount(_0=path)):
            options["service_account"] = path
            return None
        case GcsCredentials.Static(_0=GcsStaticCredentials.ServiceAccountKey(_0=key)):
            options["service_account_key"] = key
            return None
        case GcsCredentials.Static(_0=GcsStaticCredentials.ApplicationCredentials(_0=path)):
            options["application_credentials"] = path
            return None
        case GcsCredentials.Static(_0=GcsStaticCredentials.BearerToken(_0=token)):
            return _CredentialBridge("gcs", _constant(GcsBearerCredential(token)))
        case GcsCredentials.Refreshable():
            return _CredentialBridge.of("gcs", credentials)
    raise InvalidInputError(
        f"GCS storage needs GCS credentials (a GcsCredentials variant), got "
        f"{type(credentials).__name__}",
        ErrorKind.INVALID_ARGUMENT,
    )


class _constant:
    """A picklable callable returning one fixed value (a static bearer token)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self) -> Any:
        return self.value

    def __reduce__(self) -> tuple[Any, ...]:
        return (_constant, (self.value,))


def new_gcs(
    bucket: str,
    prefix: str | None,
    credentials: AnyGcsCredential | None = None,
    *,
    config: Mapping[str, str] | None = None,
    read_headers: Mapping[str, str] | None = None,
    write_headers: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    retries: StorageRetriesSettings | None = None,
    max_concurrent_requests: int = 64,
) -> ObjectStoreStorage:
    """A Google Cloud Storage bucket; ``config`` takes further obstore ``GCSConfig`` options
    (``base_url`` for an emulator, for instance)."""
    options: dict[str, Any] = dict(config or {})
    provider = _gcs_credential_config(credentials, options)
    base_url = str(options.get("base_url", ""))
    return ObjectStoreStorage(
        "gcs",
        bucket,
        prefix or "",
        options,
        _client_options(
            base_url.startswith("http://"), 60, _headers(read_headers, write_headers, headers)
        ),
        retries=retries,
        credential_provider=provider,
        max_concurrent_requests=max_concurrent_requests,
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
    read_headers: dict[str, str] | None = None,
    write_headers: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    retries: StorageRetriesSettings | None = None,
    max_concurrent_requests: int = 64,
) -> ObjectStoreStorage:
    """Storage in a Google Cloud Storage bucket (see :func:`new_gcs`); the credentials as
    :func:`~icechunk.credentials.gcs_credentials` takes them."""
    credentials = gcs_credentials(
        service_account_file=service_account_file,
        service_account_key=service_account_key,
        application_credentials=application_credentials,
        bearer_token=bearer_token,
        from_env=from_env,
        anonymous=anonymous,
        get_credentials=get_credentials,
        scatter_initial_credentials=scatter_initial_credentials,
    )
    return new_gcs(
        bucket,
        prefix,
        credentials,
        config=config,
        read_headers=read_headers,
        write_headers=write_headers,
        headers=headers,
        retries=retries,
        max_concurrent_requests=max_concurrent_requests,
    )


def _azure_credential_config(
    credentials: AnyAzureCredential | None, options: dict[str, Any]
) -> _CredentialBridge | None:
    """Map Azure credentials onto obstore ``AzureConfig`` keys (or a credential provider)."""
    match credentials:
        case None | AzureCredentials.FromEnv():
            return None
        case AzureCredentials.Anonymous():
            options["skip_signature"] = True
            return None
        case AzureCredentials.Static(_0=AzureStaticCredentials.AccessKey(_0=key)):
            options["account_key"] = key
            return None
        case AzureCredentials.Static(_0=AzureStaticCredentials.SasToken(_0=token)):
            options["sas_key"] = token
            return None
        case AzureCredentials.Static(_0=AzureStaticCredentials.BearerToken(_0=token)):
            options["token"] = token
            return None
        case AzureCredentials.Refreshable():
            return _CredentialBridge.of("azure", credentials)
    raise InvalidInputError(
        f"Azure storage needs Azure credentials (an AzureCredentials variant), got "
        f"{type(credentials).__name__}",
        ErrorKind.INVALID_ARGUMENT,
    )


def new_azure_blob(
    account: str,
    container: str,
    prefix: str | None,
    credentials: AnyAzureCredential | None = None,
    *,
    config: Mapping[str, str] | None = None,
    retries: StorageRetriesSettings | None = None,
    max_concurrent_requests: int = 64,
) -> ObjectStoreStorage:
    """An Azure Blob Storage container; ``config`` takes further obstore ``AzureConfig``
    options (``use_emulator`` and ``endpoint`` for Azurite, for instance)."""
    options: dict[str, Any] = {"account_name": account, **(config or {})}
    provider = _azure_credential_config(credentials, options)
    endpoint = str(options.get("endpoint", ""))
    emulator = str(options.get("use_emulator", "")).lower() in ("true", "1")
    return ObjectStoreStorage(
        "azure",
        container,
        prefix or "",
        options,
        _client_options(endpoint.startswith("http://") or emulator, 60, {}),
        retries=retries,
        credential_provider=provider,
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
    get_credentials: Callable[[], AnyAzureRefreshableCredential] | None = None,
    scatter_initial_credentials: bool = False,
    retries: StorageRetriesSettings | None = None,
    max_concurrent_requests: int = 64,
) -> ObjectStoreStorage:
    """Storage in an Azure Blob Storage container (see :func:`new_azure_blob`); the
    credentials as :func:`~icechunk.credentials.azure_credentials` takes them."""
    credentials = azure_credentials(
        access_key=access_key,
        sas_token=sas_token,
        bearer_token=bearer_token,
        from_env=from_env,
        anonymous=anonymous,
        get_credentials=get_credentials,
        scatter_initial_credentials=scatter_initial_credentials,
    )
    return new_azure_blob(
        account,
        container,
        prefix,
        credentials,
        config=config,
        retries=retries,
        max_concurrent_requests=max_concurrent_requests,
    )
