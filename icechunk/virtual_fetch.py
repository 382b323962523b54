"""Moved to :mod:`icechunk._core.virtual_fetch`; this import path stays (an alias of that module)."""

import sys
from typing import TYPE_CHECKING

from icechunk._core import virtual_fetch as _moved

if TYPE_CHECKING:
    from icechunk._core.virtual_fetch import *

sys.modules[__name__] = _moved
