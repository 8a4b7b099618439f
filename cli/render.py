"""Text the command line alone prints: its output stream and the explain text."""

from __future__ import annotations

import sys
from typing import Any


def out(text: str) -> None:
    sys.stdout.write(text)


def explain_text(view: dict[str, Any], indent: str = "") -> str:
    """An explanation (projections.explain) as indented ``key: value`` lines."""
    lines = []
    for key, value in view.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines.append(explain_text(value, indent + "  ").rstrip("\n"))
        elif isinstance(value, list):
            lines.append(f"{indent}{key}: {'(none)' if not value else ''}")
            for item in value:
                if isinstance(item, dict):
                    lines.append(f"{indent}  - " + ", ".join(f"{k}={v}" for k, v in item.items()))
                else:
                    lines.append(f"{indent}  - {item}")
        else:
            lines.append(f"{indent}{key}: {value}")
    return "\n".join(lines) + "\n"
