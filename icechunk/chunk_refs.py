"""Moved to :mod:`icechunk._core.chunk_refs`; this import path stays (an alias of that module)."""

import sys
from typing import TYPE_CHECKING

from icechunk._core import chunk_refs as _moved

if TYPE_CHECKING:
    from icechunk._core.chunk_refs import *

sys.modules[__name__] = _moved
