"""Snapshot objects, spec 1 and spec 2."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.format import decode_snapshot, encode_snapshot
from icechunk.format.flatbuf import Buffer
from icechunk.format.model import (
    ArrayData,
    DimensionShape,
    NodeSnapshot,
    Snapshot,
)
from icechunk.format.msgs import MSGS  # noqa: F401  # placeholder removed below
