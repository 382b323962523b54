"""The storage factories without a server: argument checks, URL parsing, pickling and repr."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from icechunk.errors import InvalidInputError
from icechunk.storage import (
    InMemoryStorage,
    LocalFileSystemStorage,
    ObjectStoreStorage,
    S3StaticCredentials,
    azure_storage,
    from_url,
    gcs_storage,
    s3_storage,
)


def test_s3_arguments() -> None:
    with pytest.raises(InvalidInputError, match="Conflicting arguments to s3_credentials"):
        s3_storage(bucket="b", prefix="p", access_key_id="k", secret_access_key="s", anonymous=True)
    with pytest.raises(InvalidInputError, match="secret_access_key together"):
        s3_storage(bucket="b", prefix="p", access_key_id="k")
    with pytest.raises(InvalidInputError, match="invalid bucket"):
        s3_storage(bucket="", prefix="p")
    storage = s3_storage(bucket="b", prefix="/a/b/", region="eu-west-1")
    assert (storage.kind, storage.bucket, storage.prefix, storage.url) == (
        "s3",
        "b",
        "a/b",
        "s3://b/a/b",
    )
    assert repr(storage) == "ObjectStoreStorage('s3://b/a/b')"


@pytest.mark.parametrize(
    ("url", "kind", "bucket", "prefix"),
    [
        ("s3://bucket/some/prefix", "s3", "bucket", "some/prefix"),
        ("s3://bucket", "s3", "bucket", ""),
        ("gs://bkt/p", "gcs", "bkt", "p"),
        ("gcs://bkt/p/q/", "gcs", "bkt", "p/q"),
        ("abfs://container@acct.dfs.core.windows.net/p", "azure", "container", "p"),
    ],
)
def test_from_url_object_stores(url: str, kind: str, bucket: str, prefix: str) -> None:
    storage = from_url(url)
    assert isinstance(storage, ObjectStoreStorage)
    assert (storage.kind, storage.bucket, storage.prefix) == (kind, bucket, prefix)


def test_from_url_other_schemes(tmp_path: Path) -> None:
    local = from_url(f"file://{tmp_path}/repo")
    assert isinstance(local, LocalFileSystemStorage) and local.root == f"{tmp_path}/repo"
    assert isinstance(from_url("memory://"), InMemoryStorage)
    azure = from_url("az://container/p", account="acct", anonymous=True)
    assert isinstance(azure, ObjectStoreStorage) and azure.kind == "azure"
    for bad in ("ftp://x/y", "s3:///no-bucket", "az://container/p"):
        with pytest.raises(InvalidInputError):
            from_url(bad)


def test_every_kind_pickles_with_credentials_and_hides_them() -> None:
    storages = [
        s3_storage(
            bucket="b",
            prefix="p",
            access_key_id="AKIA",
            secret_access_key="s3-SECRET",
            session_token="s3-TOKEN",
        ),
        gcs_storage(bucket="b", prefix="p", bearer_token="gcs-SECRET"),
        azure_storage(account="a", container="c", prefix="p", access_key="az-SECRET"),
        azure_storage(account="a", container="c", prefix="p", sas_token="sv=az-SAS-SECRET"),
    ]
    for storage in storages:
        copy = pickle.loads(pickle.dumps(storage))
        assert copy == storage and copy._config == storage._config
        assert "SECRET" not in repr(storage) and "TOKEN" not in repr(storage)
        for secret in storage._secrets:
            assert storage._redact(f"x {secret} y") == "x *** y"


def test_static_credentials_repr_hides_secrets() -> None:
    creds = S3StaticCredentials("AKIA", "the-secret", "the-token")
    assert "the-secret" not in repr(creds) and "the-token" not in repr(creds)
