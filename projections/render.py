"""Human tables, CSV and JSON for projection rows. Same rows, same bytes."""

from __future__ import annotations

import csv
import io
from typing import Any, Sequence

import msgspec


def to_builtins(rows: Sequence[Any]) -> list[Any]:
    return msgspec.to_builtins(list(rows))


def render_json(value: Any) -> str:
    return msgspec.json.format(msgspec.json.encode(msgspec.to_builtins(value)), indent=2).decode()


def _cells(rows: Sequence[Any], columns: Sequence[str]) -> list[list[str]]:
    out = []
    for row in to_builtins(rows):
        out.append(["" if row.get(c) is None else str(row.get(c)) for c in columns])
    return out


def render_csv(rows: Sequence[Any], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(_cells(rows, columns))
    return buffer.getvalue()


def render_table(rows: Sequence[Any], columns: Sequence[str], numeric: Sequence[str] = ()) -> str:
    cells = _cells(rows, columns)
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    def fmt(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if columns[i] in numeric else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths))
        ).rstrip()
    lines = [fmt(columns), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in cells]
    return "\n".join(lines) + "\n"


def render(rows: Sequence[Any], columns: Sequence[str], fmt: str, numeric: Sequence[str] = ()) -> str:
    if fmt == "json":
        return render_json(rows) + "\n"
    if fmt == "csv":
        return render_csv(rows, columns)
    return render_table(rows, columns, numeric)
