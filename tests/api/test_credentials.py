"""Credential types and helpers shaped like the real icechunk 2.3.0's, and how the GCS and Azure
ones map onto obstore's configuration (there are no GCS/Azure servers here: the mapping is what
is checked; S3 credentials are exercised against real servers in tests/s3)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import icechunk as ic
from icechunk.storage import gcs_storage
from icechunk.storage._credentials import _CredentialBridge
from icechunk.storage._factories import _azure_credential_config, _gcs_credential_config

LATER = datetime.now(UTC) + timedelta(hours=1)


def s3_creds() -> ic.S3StaticCredentials:
    return ic.S3StaticCredentials("AK", "SECRETKEY", expires_after=LATER)


def gcs_token() -> ic.GcsBearerCredential:
    return ic.GcsBearerCredential("TOKEN123", expires_after=LATER)


def azure_sas() -> Any:
    return ic.AzureRefreshableCredential.SasToken("SAS123", LATER)


def test_s3_helpers_return_the_real_variants() -> None:
    static = ic.s3_static_credentials(access_key_id="AK", secret_access_key="SECRETKEY")
    assert isinstance(static, ic.S3Credentials.Static) and isinstance(static, ic.S3Credentials)
    assert static._0 == ic.S3StaticCredentials("AK", "SECRETKEY")
    assert isinstance(ic.s3_anonymous_credentials(), ic.S3Credentials.Anonymous)
    assert isinstance(ic.s3_from_env_credentials(), ic.S3Credentials.FromEnv)
    assert isinstance(ic.s3_credentials(), ic.S3Credentials.FromEnv)
    assert isinstance(ic.s3_credentials(anonymous=True), ic.S3Credentials.Anonymous)
    refresh = ic.s3_credentials(get_credentials=s3_creds)
    assert isinstance(refresh, ic.S3Credentials.Refreshable) and refresh.current is None
    assert pickle.loads(refresh.pickled_function) is s3_creds
    scattered = ic.s3_refreshable_credentials(s3_creds, scatter_initial_credentials=True)
    assert scattered.current == s3_creds()
    for union, value in (
        (ic.AnyS3Credential, static),
        (ic.AnyCredential, ic.Credentials.HttpAccess()),
    ):
        assert isinstance(value, union)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"anonymous": True, "from_env": True},
        {"access_key_id": "AK"},
        {"get_credentials": s3_creds, "anonymous": True},
        {"access_key_id": "AK", "secret_access_key": "S", "from_env": True},
    ],
)
def test_s3_credentials_conflicts(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Conflicting arguments to s3_credentials function"):
        ic.s3_credentials(**kwargs)


def test_gcs_and_azure_helpers() -> None:
    assert isinstance(ic.gcs_credentials(), ic.GcsCredentials.FromEnv)
    assert isinstance(
        ic.gcs_credentials(bearer_token="t", anonymous=True), ic.GcsCredentials.Anonymous
    )
    static = ic.gcs_credentials(service_account_file="/sa.json")
    assert isinstance(static, ic.GcsCredentials.Static)
    assert static._0 == ic.GcsStaticCredentials.ServiceAccount("/sa.json")
    assert isinstance(
        ic.gcs_static_credentials(bearer_token="t"), ic.GcsStaticCredentials.BearerToken
    )
    assert isinstance(ic.gcs_credentials(get_credentials=gcs_token), ic.GcsCredentials.Refreshable)
    with pytest.raises(ValueError, match="Conflicting arguments to gcs_static_credentials"):
        ic.gcs_static_credentials()
    with pytest.raises(ValueError, match="Conflicting arguments to gcs_credentials"):
        ic.gcs_credentials(bearer_token="t", from_env=True)
    assert isinstance(ic.azure_credentials(), ic.AzureCredentials.FromEnv)
    assert isinstance(ic.azure_anonymous_credentials(), ic.AzureCredentials.Anonymous)
    assert isinstance(ic.azure_from_env_credentials(), ic.AzureCredentials.FromEnv)
    sas = ic.azure_credentials(sas_token="s")
    assert isinstance(sas, ic.AzureCredentials.Static)
    assert sas._0 == ic.AzureStaticCredentials.SasToken("s")
    assert isinstance(
        ic.azure_credentials(get_credentials=azure_sas), ic.AzureCredentials.Refreshable
    )
    for bad in ({}, {"access_key": "k", "sas_token": "s"}):
        with pytest.raises(ValueError, match="Conflicting arguments to azure_static_credentials"):
            ic.azure_static_credentials(**bad)


def test_variants_validate_their_values() -> None:
    with pytest.raises(TypeError, match="S3StaticCredentials"):
        ic.S3Credentials.Static("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pickled_function"):
        ic.S3Credentials.Refreshable("not bytes", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="GcsBearerCredential"):
        ic.GcsCredentials.Refreshable(pickle.dumps(gcs_token), s3_creds())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        ic.s3_refreshable_credentials(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ic.GcsBearerCredential("t", LATER)  # type: ignore[misc]  # expires_after is keyword-only


def test_reprs_hide_secrets_and_values_pickle() -> None:
    values = [
        ic.s3_static_credentials(
            access_key_id="AK", secret_access_key="SECRETKEY", session_token="SESSIONTOK"
        ),
        ic.GcsStaticCredentials.BearerToken("TOKEN123"),
        ic.GcsStaticCredentials.ServiceAccountKey("KEYMATERIAL"),
        ic.AzureStaticCredentials.AccessKey("ACCESSKEY1"),
        ic.AzureRefreshableCredential.BearerToken("BEARER123", LATER),
        ic.GcsBearerCredential("TOKEN123"),
        ic.s3_refreshable_credentials(s3_creds, scatter_initial_credentials=True),
    ]
    for value in values:
        for secret in (
            "SECRETKEY",
            "SESSIONTOK",
            "TOKEN123",
            "KEYMATERIAL",
            "ACCESSKEY1",
            "BEARER123",
        ):
            assert secret not in repr(value)
        assert pickle.loads(pickle.dumps(value)) == value


def test_containers_credentials_wraps_each_kind() -> None:
    got = ic.containers_credentials(
        {
            "s3://a/": ic.s3_anonymous_credentials(),
            "gs://b/": ic.gcs_from_env_credentials(),
            "az://c/": ic.azure_anonymous_credentials(),
            "file:///d/": ic.credentials.LocalFileSystemAccess,
        }
    )
    assert got["s3://a/"] == ic.Credentials.S3(ic.S3Credentials.Anonymous())
    assert got["gs://b/"] == ic.Credentials.Gcs(ic.GcsCredentials.FromEnv())
    assert got["az://c/"] == ic.Credentials.Azure(ic.AzureCredentials.Anonymous())
    assert isinstance(got["file:///d/"], ic.Credentials.LocalFileSystemAccess)
    with pytest.raises(ValueError, match="Unknown credential type"):
        ic.containers_credentials({"s3://a/": "nope"})


@pytest.mark.parametrize(
    ("credentials", "config"),
    [
        (ic.GcsCredentials.Anonymous(), {"skip_signature": True}),
        (ic.GcsCredentials.FromEnv(), {}),
        (ic.gcs_credentials(service_account_file="/sa.json"), {"service_account": "/sa.json"}),
        (ic.gcs_credentials(service_account_key="{}"), {"service_account_key": "{}"}),
        (
            ic.gcs_credentials(application_credentials="/adc.json"),
            {"application_credentials": "/adc.json"},
        ),
    ],
)
def test_gcs_credentials_map_onto_obstore_config(credentials: Any, config: dict[str, Any]) -> None:
    options: dict[str, Any] = {}
    assert _gcs_credential_config(credentials, options) is None
    assert options == config


def test_gcs_bearer_and_refreshable_become_credential_providers() -> None:
    static = _gcs_credential_config(ic.gcs_credentials(bearer_token="TOKEN123"), {})
    assert isinstance(static, _CredentialBridge)
    assert static()["token"] == "TOKEN123"
    refresh = _gcs_credential_config(ic.gcs_refreshable_credentials(gcs_token), {})
    assert isinstance(refresh, _CredentialBridge)
    assert refresh() == {"token": "TOKEN123", "expires_at": LATER}
    copy = pickle.loads(pickle.dumps(refresh))
    assert copy()["token"] == "TOKEN123"


@pytest.mark.parametrize(
    ("credentials", "config"),
    [
        (ic.AzureCredentials.Anonymous(), {"skip_signature": True}),
        (ic.azure_credentials(access_key="K"), {"account_key": "K"}),
        (ic.azure_credentials(sas_token="S"), {"sas_key": "S"}),
        (ic.azure_credentials(bearer_token="B"), {"token": "B"}),
    ],
)
def test_azure_credentials_map_onto_obstore_config(
    credentials: Any, config: dict[str, Any]
) -> None:
    options: dict[str, Any] = {}
    assert _azure_credential_config(credentials, options) is None
    assert options == config


def test_azure_refreshable_calls_the_users_function() -> None:
    bridge = _azure_credential_config(ic.azure_refreshable_credentials(azure_sas), {})
    assert isinstance(bridge, _CredentialBridge)
    assert bridge() == {"sas_token": "SAS123", "expires_at": LATER}
    storage = ic.Storage.new_azure_blob(
        "acct", "cont", "p", ic.azure_refreshable_credentials(azure_sas)
    )
    copy = pickle.loads(pickle.dumps(storage))
    assert copy._credential_provider() == {"sas_token": "SAS123", "expires_at": LATER}


def test_wrong_kind_of_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match="GCS storage needs GCS credentials"):
        ic.Storage.new_gcs("b", "p", ic.s3_anonymous_credentials())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="S3 storage needs S3 credentials"):
        ic.Storage.new_s3(ic.S3Options(), "b", "p", ic.gcs_from_env_credentials())  # type: ignore[arg-type]
    storage = gcs_storage(bucket="b", prefix="p", anonymous=True)
    assert storage._config == {"skip_signature": True}
