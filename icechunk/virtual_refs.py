"""Moved to :mod:`icechunk._core.virtual_refs`; this import path stays (an alias of that module)."""

import sys
from typing import TYPE_CHECKING

from icechunk._core import virtual_refs as _moved

if TYPE_CHECKING:
    from icechunk._core.virtual_refs import *

sys.modules[__name__] = _moved
