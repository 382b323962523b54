"""Moved to :mod:`icechunk._core.conflicts`; this import path stays (an alias of that module)."""

import sys
from typing import TYPE_CHECKING

from icechunk._core import conflicts as _moved

if TYPE_CHECKING:
    from icechunk._core.conflicts import *

sys.modules[__name__] = _moved
