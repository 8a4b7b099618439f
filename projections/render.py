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


# SPEC §11: a CSV text cell beginning with one of these is written with a
# leading "'", so that a spreadsheet shows it as text instead of running it as
# a formula (=HYPERLINK(…), +cmd, -1+1, @SUM(…), and a tab or CR before them).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any, numeric: bool = False) -> str:
    """One CSV cell. Integers are numbers and are written as they are, so a
    negative amount stays ``-300``; a column declared ``numeric`` must hold
    integers (or nothing). Everything else is text, escaped per SPEC §11."""
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if numeric:
        raise ValueError(f"numeric CSV column holds {type(value).__name__} {value!r:.40}")
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def render_csv(rows: Sequence[Any], columns: Sequence[str], numeric: Sequence[str] = ()) -> str:
    """The one CSV writer of the project (CLI, pages, payout batches).

    ``numeric`` names the columns that are numbers (amounts, which may be
    negative: never escaped); they must hold integers. Other integer values
    (positions, counts) are numbers too; every other cell is text and escaped
    (SPEC §11), whatever its column."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)  # our own names: nothing to escape
    flags = [c in numeric for c in columns]
    for row in to_builtins(rows):
        writer.writerow([csv_cell(row.get(c), is_number) for c, is_number in zip(columns, flags)])
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
        return render_csv(rows, columns, numeric)
    return render_table(rows, columns, numeric)
