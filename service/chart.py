"""The promoter page's chart: pending, payable and paid of one currency as
step lines over event time, computed here as SVG coordinates for the
``chart.svg`` template to draw."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from projections.statements import StatementEntry, balance_steps
from schemas.timestamps import format_timestamp_us

WIDTH, HEIGHT, PAD = 900, 220, 34
SERIES = (("pending", "#d98c00"), ("payable", "#1f6feb"), ("paid", "#2da44e"))


@dataclass(frozen=True)
class Line:
    name: str
    color: str
    points: str  # an SVG polyline's "x,y x,y …"


@dataclass(frozen=True)
class Chart:
    currency: str
    lo: int  # the value range drawn, in minor units
    hi: int
    zero_y: str  # where the zero line is drawn
    first: str  # dates of the first and last step
    last: str
    lines: list[Line]
    width: int = WIDTH
    height: int = HEIGHT
    pad: int = PAD


def charts(entries: list[StatementEntry]) -> list[Chart]:
    """One chart per currency of the statement, in currency order."""
    return [_chart(currency, balance_steps(entries, currency)) for currency in sorted({e.currency for e in entries})]


def _chart(currency: str, steps: list[tuple[int, int, int, int]]) -> Chart:
    values = [v for step in steps for v in step[1:]]
    lo, hi = min(0, *values), max(1, *values)
    t0, t1 = steps[0][0], steps[-1][0]

    def x(t: int) -> float:
        return PAD + (WIDTH - 2 * PAD) * ((t - t0) / (t1 - t0) if t1 > t0 else 1.0)

    def y(v: int) -> float:
        return HEIGHT - PAD - (HEIGHT - 2 * PAD) * ((v - lo) / (hi - lo))

    def points(column: int) -> Iterable[str]:
        yield f"{PAD:.1f},{y(0):.1f}"
        previous = 0
        for step in steps:  # a step: along at the old value, then up or down
            yield f"{x(step[0]):.1f},{y(previous):.1f}"
            yield f"{x(step[0]):.1f},{y(step[column]):.1f}"
            previous = step[column]
        yield f"{WIDTH - PAD:.1f},{y(previous):.1f}"

    lines = [Line(name, color, " ".join(points(column))) for column, (name, color) in enumerate(SERIES, start=1)]
    return Chart(currency, lo, hi, f"{y(0):.1f}", format_timestamp_us(t0)[:10], format_timestamp_us(t1)[:10], lines)
