"""Moved to :mod:`icechunk._core.change_set`; this import path stays (an alias of that module)."""

import sys
from typing import TYPE_CHECKING

from icechunk._core import change_set as _moved

if TYPE_CHECKING:
    from icechunk._core.change_set import *

sys.modules[__name__] = _moved
