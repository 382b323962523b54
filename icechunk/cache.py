"""Moved to :mod:`icechunk._core.cache`; this import path stays (an alias of that module)."""

import sys
from typing import TYPE_CHECKING

from icechunk._core import cache as _moved

if TYPE_CHECKING:
    from icechunk._core.cache import *

sys.modules[__name__] = _moved
