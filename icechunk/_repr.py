"""The real Icechunk's multi-line repr of configuration values, for our config classes."""

from __future__ import annotations

from collections.abc import Sequence


def config_repr(qualname: str, fields: Sequence[tuple[str, object]]) -> str:
    """``qualname(\\n    name=value,\\n)`` with nested multi-line values indented."""
    lines = [f"{qualname}("]
    for name, value in fields:
        text = repr(value) if not isinstance(value, str) else f'"{value}"'
        text = text.replace("\n", "\n    ")
        lines.append(f"    {name}={text},")
    lines.append(")")
    return "\n".join(lines)
