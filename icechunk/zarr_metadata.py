"""Moved to :mod:`icechunk._core.zarr_metadata`; this import path stays (an alias of that module)."""

import sys
from typing import TYPE_CHECKING

from icechunk._core import zarr_metadata as _moved

if TYPE_CHECKING:
    from icechunk._core.zarr_metadata import *

sys.modules[__name__] = _moved
