"""Logging set-up with the real Icechunk's entry points (``ICECHUNK_LOG``, filter directives).

This package logs through the standard :mod:`logging` module under the ``icechunk`` logger.
The real library filters its Rust tracing output with directives such as ``"debug"`` or
``"icechunk=trace,warn"``; the same directives set the levels of the ``icechunk`` logger and
its children here.
"""

from __future__ import annotations

import logging
import os

__all__ = ["initialize_logs", "set_logs_filter", "shutdown_telemetry"]

_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "off": logging.CRITICAL + 10,
}
_ROOT = "icechunk"
_handler: logging.Handler | None = None


def _level(word: str) -> int:
    try:
        return _LEVELS[word.strip().lower()]
    except KeyError:
        raise ValueError(
            f"invalid log level {word!r} in the log filter; use one of {sorted(_LEVELS)}"
        ) from None


def set_logs_filter(log_filter_directive: str | None) -> None:
    """Set log levels from a directive: ``"warn"``, ``"icechunk=debug"``,
    ``"icechunk.session=trace,warn"`` (comma-separated; a bare level applies to the whole
    ``icechunk`` logger). ``None`` restores the default (warnings and errors only).

    Raises
    ------
    ValueError
        A level is not one of trace, debug, info, warn, error, off.
    """
    logging.getLogger(_ROOT).setLevel(logging.WARNING)
    if not log_filter_directive:
        return
    parts = [p for p in log_filter_directive.split(",") if p.strip()]
    # bare levels are defaults; `target=level` directives override them, whatever the order
    for part in sorted(parts, key=lambda p: "=" in p):
        target, sep, word = part.partition("=")
        if not sep:
            target, word = _ROOT, target
        name = target.strip().replace("::", ".")
        if name == _ROOT or name.startswith(_ROOT + "."):
            logging.getLogger(name).setLevel(_level(word))
        else:
            _level(word)  # validate directives for other crates; nothing of theirs logs here


def initialize_logs() -> None:
    """Send the ``icechunk`` loggers' records to stderr, filtered by ``ICECHUNK_LOG`` if set.

    Called by users (the real library also calls it on import); calling it again only
    re-reads ``ICECHUNK_LOG``.
    """
    global _handler
    logger = logging.getLogger(_ROOT)
    if _handler is None:
        _handler = logging.StreamHandler()
        _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(_handler)
    set_logs_filter(os.environ.get("ICECHUNK_LOG"))


def shutdown_telemetry() -> None:
    """Flush log handlers (there is no OpenTelemetry exporter in this implementation)."""
    for handler in logging.getLogger(_ROOT).handlers:
        handler.flush()
