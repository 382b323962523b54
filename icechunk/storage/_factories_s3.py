"""The S3-family storage factories: S3 itself, Tigris and Cloudflare R2 (all through obstore)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from icechunk.errors import ErrorKind, InvalidInputError, StorageError
from icechunk.storage._credential_bridge import _CredentialBridge
from icechunk.storage._credentials import (
    AnyS3Credential,
    S3Credentials,
    S3StaticCredentials,
    s3_credentials,
)
from icechunk.storage._factories_common import _check_rooted, _client_options, _headers, _options
from icechunk.storage._obstore import ObjectStoreStorage
from icechunk.storage._settings import StorageRetriesSettings

_TIGRIS_ENDPOINT = "https://t3.storage.dev"


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
