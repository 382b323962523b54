"""The Google Cloud Storage and Azure Blob Storage factories (through obstore)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.storage._credential_bridge import _CredentialBridge
from icechunk.storage._credentials import (
    AnyAzureCredential,
    AnyGcsCredential,
    AzureCredentials,
    AzureStaticCredentials,
    GcsBearerCredential,
    GcsCredentials,
    GcsStaticCredentials,
    azure_credentials,
    gcs_credentials,
)
from icechunk.storage._credentials_azure import AnyAzureRefreshableCredential
from icechunk.storage._factories_common import _client_options, _headers
from icechunk.storage._obstore import ObjectStoreStorage
from icechunk.storage._settings import StorageRetriesSettings


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


_constant.__module__ = "icechunk.storage._factories"  # where pickles look for it
