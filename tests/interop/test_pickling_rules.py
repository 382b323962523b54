"""The pickling rules of the real icechunk 2.3.0 against ours (docs/design/003-sessions.md).

Read-only sessions and forks pickle in both. A writable non-fork session (or its store): the
real one refuses with a ValueError that points to ``fork()``; ours pickles it into a read-only
view whose first write raises with the same advice (tests/integrations/test_pickling.py). This
test pins both sides, so a change in either is noticed.
"""

from __future__ import annotations

import pytest

from tests.interop import oracle
from tests.interop.conftest import run_script

pytestmark = pytest.mark.interop


def test_pickling_rules_real_and_ours(oracle_envs: dict[str, oracle.Oracle]) -> None:
    real = run_script("ic2", "pickling_rules.py")["rules"]
    ours = run_script("ours", "pickling_rules.py")["rules"]
    refused = {"pickles": False, "error": "ValueError", "fork_hint": True}
    assert real == {
        "writable session": refused,
        "writable store": refused,
        "read-only session": {"pickles": True},
        "fork": {"pickles": True},
    }
    # the one deliberate difference: ours sends writable sessions as read-only views
    assert ours == {name: {"pickles": True} for name in real}
