"""Moved to :mod:`icechunk._core.maintenance`; this import path stays (an alias of that module)."""

import sys
from typing import TYPE_CHECKING

from icechunk._core import maintenance as _moved

if TYPE_CHECKING:
    from icechunk._core.maintenance import *

sys.modules[__name__] = _moved
