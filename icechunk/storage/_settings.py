"""Settings of the cloud storages that are not credentials: how hard requests are retried."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from icechunk.errors import InvalidInputError

__all__ = ["StorageRetriesSettings"]


@dataclasses.dataclass(frozen=True, slots=True)
class StorageRetriesSettings:
    """How hard each request is retried before an error surfaces (names as the real Icechunk's).

    The defaults give up on an unreachable endpoint within about three seconds.

    Attributes
    ----------
    max_tries
        Attempts per request, the first included.
    initial_backoff_ms, max_backoff_ms
        Exponential backoff (base 2, with jitter) between attempts.
    retry_timeout_ms
        No retry starts later than this after the first attempt.
    """

    max_tries: int = 6
    initial_backoff_ms: int = 100
    max_backoff_ms: int = 3_000
    retry_timeout_ms: int = 30_000

    def __post_init__(self) -> None:
        if self.max_tries < 1 or self.initial_backoff_ms < 0 or self.max_backoff_ms < 0:
            raise InvalidInputError(f"invalid retry settings: {self!r}")

    def to_obstore(self) -> dict[str, Any]:
        return {
            "max_retries": self.max_tries - 1,
            "retry_timeout": timedelta(milliseconds=self.retry_timeout_ms),
            "backoff": {
                "init_backoff": timedelta(milliseconds=self.initial_backoff_ms),
                "max_backoff": timedelta(milliseconds=self.max_backoff_ms),
                "base": 2,
            },
        }


# -- error handling ---------------------------------------------------------------------------
