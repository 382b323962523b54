"""Moved to :mod:`icechunk._core.inspect`; this import path stays (an alias of that module)."""

import sys
from typing import TYPE_CHECKING

from icechunk._core import inspect as _moved

if TYPE_CHECKING:
    from icechunk._core.inspect import *

sys.modules[__name__] = _moved
