"""RFC 3339 timestamps (SPEC §1) to whole microseconds since the epoch.

Strict on purpose: only ``YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|±HH:MM)``, ASCII digits,
``T``/``Z`` in either case, a real calendar date and time (no leap second). The
instant, never the text, is what the ledger compares (SPEC §3).
"""

from __future__ import annotations

from typing import Final

import re

_PATTERN = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?"
    r"(?:[Zz]|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
US_PER_SECOND: Final = 1_000_000
US_PER_DAY: Final = 86_400 * US_PER_SECOND


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


_day_cache: dict[str, int | None] = {}
_DAY_CACHE_MAX = 100_000  # bounded: a stream spans far fewer distinct dates


def _days(date: str) -> int | None:
    """Days since the epoch for ``YYYY-MM-DD``, or None if not a real date."""
    days = _day_cache.get(date, -1)
    if days != -1:
        return days
    y, mo, d = int(date[:4]), int(date[5:7]), int(date[8:10])
    valid = y >= 1 and 1 <= mo <= 12 and 1 <= d <= (29 if mo == 2 and _is_leap(y) else _DAYS_IN_MONTH[mo])
    days = days_from_civil(y, mo, d) if valid else None
    if len(_day_cache) < _DAY_CACHE_MAX:
        _day_cache[date] = days
    return days


_hour_cache: dict[str, int] = {}  # "YYYY-MM-DDTHH" → seconds since the epoch; valid prefixes only
_HOUR_CACHE_MAX = 200_000  # bounded: ~23 years of distinct hours; emptied when full


def _hour_seconds(prefix: str) -> int | None:
    """Seconds since the epoch for a ``YYYY-MM-DDTHH`` prefix that the pattern
    matched, or None if it is not a real date and hour. Only real ones are
    cached: the fast path takes a cached prefix as proof of its layout."""
    seconds = _hour_cache.get(prefix)
    if seconds is not None:
        return seconds
    days, hour = _days(prefix[:10]), int(prefix[11:13])
    if days is None or hour > 23:
        return None
    seconds = days * 86_400 + hour * 3600
    if len(_hour_cache) >= _HOUR_CACHE_MAX:
        _hour_cache.clear()
    _hour_cache[prefix] = seconds
    return seconds


# Every valid ":MM:SS" and every valid zone (``Z``, ``z``, ``±HH:MM`` with HH ≤ 23,
# MM ≤ 59) with its seconds; a piece not in these tables is not valid there.
_MINUTE_SECONDS = {f":{m:02d}:{s:02d}": m * 60 + s for m in range(60) for s in range(60)}
_ZONES = {"Z": 0, "z": 0} | {
    f"{sign}{h:02d}:{m:02d}": (-1 if sign == "+" else 1) * (h * 3600 + m * 60)
    for sign in "+-" for h in range(24) for m in range(60)
}
_FRACTION_SCALE = (0, 100_000, 10_000, 1_000, 100, 10, 1)  # µs per unit of a 1–6 digit fraction


def parse_timestamp_us(text: str) -> int | None:
    """Return the instant as microseconds since the epoch, or None when invalid.

    The fast path slices the fixed layout ``YYYY-MM-DDTHH`` ``:MM:SS``
    ``[.f{1,6}]`` ``zone`` and looks each piece up in a table that holds valid
    pieces only (a cached real hour, a real minute and second, a real zone), so
    it answers only for valid text. Anything else goes to ``_parse_careful``,
    the pattern, which alone decides that a text is invalid (and fills the
    hour cache)."""
    try:
        seconds = _hour_cache[text[:13]] + _MINUTE_SECONDS[text[13:19]]
        if text[19] != ".":  # no fraction: the rest is the zone
            return (seconds + _ZONES[text[19:]]) * US_PER_SECOND
        if text[-1] in "Zz":
            fraction, offset = text[20:-1], 0
        else:  # a 6-character window holding text[19] holds ".", so a valid zone starts past it
            fraction, offset = text[20:-6], _ZONES[text[-6:]]
        # ASCII digits only, 1–6 of them: the length first, so a text of
        # thousands of digits never reaches int() (its 4,300-digit limit raises).
        if len(fraction) <= 6 and fraction.isdigit() and fraction.isascii():
            return (seconds + offset) * US_PER_SECOND + int(fraction) * _FRACTION_SCALE[len(fraction)]
    except (KeyError, IndexError):
        pass
    return _parse_careful(text)


def _parse_careful(text: str) -> int | None:
    """The reference parser (the pattern, then the calendar): the instant, or
    None when invalid. ``parse_timestamp_us`` gives the same answer for every text."""
    match = _PATTERN.fullmatch(text)
    if match is None:
        return None
    # The pattern fixes the layout up to the seconds: slice instead of groups.
    hour_s = _hour_seconds(text[:13])
    mi, s = int(text[14:16]), int(text[17:19])
    if hour_s is None or mi > 59 or s > 59:
        return None
    seconds = hour_s + mi * 60 + s
    fraction, sign, off_h, off_m = match.group(5, 6, 7, 8)
    if sign is not None:
        oh, om = int(off_h), int(off_m)
        if oh > 23 or om > 59:
            return None
        seconds += -(oh * 3600 + om * 60) if sign == "+" else (oh * 3600 + om * 60)
    if fraction:
        return seconds * US_PER_SECOND + int(fraction) * 10 ** (6 - len(fraction))
    return seconds * US_PER_SECOND


def format_timestamp_us(instant_us: int) -> str:
    """Canonical UTC text for an instant: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    days, rem_us = divmod(instant_us, US_PER_DAY)
    seconds, micros = divmod(rem_us, US_PER_SECOND)
    # civil_from_days (H. Hinnant)
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    y = yoe + era * 400 + (m <= 2)
    hh, rem = divmod(seconds, 3600)
    mm, ss = divmod(rem, 60)
    return f"{y:04d}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{micros:06d}Z"
