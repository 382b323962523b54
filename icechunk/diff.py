"""Moved to :mod:`icechunk._core.diff`; this import path stays (an alias of that module)."""

import sys
from typing import TYPE_CHECKING

from icechunk._core import diff as _moved

if TYPE_CHECKING:
    from icechunk._core.diff import *

sys.modules[__name__] = _moved
