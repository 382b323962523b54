"""Storage on cloud object stores (S3 and S3-compatible servers, Google Cloud Storage, Azure Blob).

A stable import path kept for compatibility: the backend now lives in private modules,

* :mod:`icechunk.storage._obstore` -- :class:`ObjectStoreStorage` (requests, retries, the
  write-id read-back, error mapping; see its module documentation for the guarantees);
* :mod:`icechunk.storage._credentials` and :mod:`icechunk.storage._settings` -- credential
  values and :class:`StorageRetriesSettings` (no obstore needed);
* :mod:`icechunk.storage._factories` -- :func:`s3_storage`, :func:`gcs_storage`,
  :func:`azure_storage`;
* :mod:`icechunk.storage._url` -- :func:`from_url`, the one location parser.

Prefer importing from :mod:`icechunk.storage`. Importing this module imports obstore.
"""

from __future__ import annotations

# Pickles made before the split name ``icechunk.storage.obstore._rebuild`` and
# ``icechunk.storage.obstore._CredentialBridge``: keep both names loadable from here.
from icechunk.storage._credentials import (
    AzureRefreshableCredential,
    GcsBearerCredential,
    S3StaticCredentials,
)
from icechunk.storage._factories import azure_storage, gcs_storage, s3_storage
from icechunk.storage._obstore import (  # noqa: F401
    WRITE_ID_METADATA_KEY,
    ObjectStoreStorage,
    _rebuild,
)
from icechunk.storage._settings import StorageRetriesSettings
from icechunk.storage._url import from_url

__all__ = [
    "WRITE_ID_METADATA_KEY",
    "AzureRefreshableCredential",
    "GcsBearerCredential",
    "ObjectStoreStorage",
    "S3StaticCredentials",
    "StorageRetriesSettings",
    "azure_storage",
    "from_url",
    "gcs_storage",
    "s3_storage",
]
