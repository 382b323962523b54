"""Moved to :mod:`icechunk._core.manifest_writer`; this import path stays (an alias of that module)."""

import sys
from typing import TYPE_CHECKING

from icechunk._core import manifest_writer as _moved

if TYPE_CHECKING:
    from icechunk._core.manifest_writer import *

sys.modules[__name__] = _moved
