"""The reliability tests' bookkeeping: which fault each test tries, and what happened.

A test declares the fault or bad input it tries with the ``reliability`` marker::

    @pytest.mark.reliability(
        category="crash", fault="SIGKILL of a committing process", outcome="nothing lost"
    )

and reports its figures (crashes injected, commits checked, ...) through the ``figures``
fixture. The figures are printed in the terminal summary (with or without ``-s``), attached to
the test report as user properties (``record_property``, so they reach JUnit XML), and, with the
outcome of every marked test, saved to :data:`RESULTS` for ``python -m tests.reliability.report``,
which renders ``docs/reliability.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from tests.s3.conftest import seaweedfs_server

__all__ = ["RESULTS", "Figures", "figures", "seaweedfs_server"]
# ``seaweedfs_server``: the real SeaweedFS S3 server of tests/s3 (session-scoped), for the
# SIGKILL and soak tests on object storage

RESULTS = Path(__file__).resolve().parents[2] / ".cache" / "reliability" / "results.json"
"""Outcome and figures of each marked test of the latest runs (merged across runs)."""

_FIGURES: dict[str, dict[str, Any]] = {}
_OUTCOMES: dict[str, dict[str, Any]] = {}


class Figures:
    """What one test measured: named numbers, reported at the end of the session."""

    def __init__(self, nodeid: str, record: Callable[[str, object], None]) -> None:
        self._nodeid = nodeid
        self._record = record

    def add(self, **figures: Any) -> None:
        """Record figures (``kills=40, commits_acknowledged=...``), adding to earlier ones."""
        mine = _FIGURES.setdefault(self._nodeid, {})
        for name, value in figures.items():
            if isinstance(value, int | float) and isinstance(mine.get(name), int | float):
                mine[name] += value
            else:
                mine[name] = value
            self._record(name, mine[name])
        print(f"{self._nodeid}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


@pytest.fixture
def figures(
    request: pytest.FixtureRequest, record_property: Callable[[str, object], None]
) -> Figures:
    """Record this test's figures (see :class:`Figures`)."""
    return Figures(request.node.nodeid, record_property)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    mark = item.get_closest_marker("reliability")
    if mark is not None and (report.when == "call" or report.outcome != "passed"):
        _OUTCOMES[item.nodeid] = {"test": item.nodeid.split("[")[0], "result": report.outcome}
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures")
    for nodeid, figs in _FIGURES.items():
        terminalreporter.write_line(f"{nodeid}: " + ", ".join(f"{k}={v}" for k, v in figs.items()))


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _OUTCOMES:
        return
    previous: dict[str, Any] = {}
    if RESULTS.exists():
        try:
            previous = json.loads(RESULTS.read_text())
        except ValueError:
            previous = {}
    for nodeid, outcome in _OUTCOMES.items():
        previous[nodeid] = {**outcome, "figures": _FIGURES.get(nodeid, {})}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(previous, indent=1, sort_keys=True))
