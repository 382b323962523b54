"""A Prefect Block describing where a repository lives and how to reach it."""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from icechunk import Repository
from tasks.core import open_repository

__all__ = ["IcechunkRepositoryBlock"]


class IcechunkRepositoryBlock(Block):
    """Location and credentials of an Icechunk repository.

    Examples
    --------
    >>> block = IcechunkRepositoryBlock(location="/data/weather.icechunk")  # doctest: +SKIP
    >>> block.save("weather")  # doctest: +SKIP
    >>> repo = IcechunkRepositoryBlock.load("weather").open_repository()  # doctest: +SKIP
    """

    _block_type_name = "Icechunk Repository"
    _block_type_slug = "icechunk-repository"
    _description = "Where an Icechunk repository lives (local path or s3://bucket/prefix)."
    _documentation_url = "https://icechunk.io/en/latest/"
    _code_example = """
```python
from tasks.blocks import IcechunkRepositoryBlock

icechunk_repository_block = IcechunkRepositoryBlock.load("BLOCK_NAME")
repo = icechunk_repository_block.open_repository()
```
"""

    location: str = Field(description="A local path, file://, memory:// or s3://bucket/prefix.")
    spec_version: int | None = Field(
        default=None, description="On-disk spec version for new repositories (default: 2)."
    )
    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint URL, for object storage."
    )
    region: str | None = Field(default=None, description="Object-storage region.")
    access_key_id: SecretStr | None = Field(default=None, description="Access key id.")
    secret_access_key: SecretStr | None = Field(default=None, description="Secret access key.")

    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for the storage factory (secrets revealed only here)."""
        options: dict[str, Any] = {}
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.region:
            options["region"] = self.region
        if self.access_key_id is not None:
            options["access_key_id"] = self.access_key_id.get_secret_value()
        if self.secret_access_key is not None:
            options["secret_access_key"] = self.secret_access_key.get_secret_value()
        return options

    def open_repository(self, *, create: bool = True) -> Repository:
        """Open (or create) the repository this block describes."""
        return open_repository(
            self.location,
            create=create,
            spec_version=self.spec_version,
            **self.storage_options(),
        )
