"""Moved to :mod:`icechunk._core.refs`; this import path stays (an alias of that module)."""

import sys
from typing import TYPE_CHECKING

from icechunk._core import refs as _moved

if TYPE_CHECKING:
    from icechunk._core.refs import *

sys.modules[__name__] = _moved
