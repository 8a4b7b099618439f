"""Program rules (SPEC §2): TOML → a frozen, fully-defaulted ``Rules``.

Every key has a default; unknown keys, bad values and anything that would pay a
third level raise ``ConfigError`` (the CLI turns it into exit 2).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from typing import Any, Literal, Union

import msgspec

from schemas.events import MAX_RATE_BP, MAX_SAFE_INT

US_PER_UNIT = {"d": 86_400_000_000, "h": 3_600_000_000, "m": 60_000_000, "s": 1_000_000}
_DURATION = re.compile(r"(\d+)([dhms])", re.ASCII)
_THIRD_LEVEL = re.compile(r"level_?([3-9]|\d\d+)", re.IGNORECASE)

AttributionModel = Literal["last_click", "first_click", "customer_lock"]
Scope = Literal["any", "merchant", "product"]
Clock = Literal["order", "receipt"]

# Keys added by issue 20 (SPEC §14, §15), with their defaults: a rules version
# that leaves them at the default records, encodes and hashes as before, so a
# store written before keeps its digests (``Rules.digest``, ``Rules.to_toml``).
_LATER_DEFAULTS: dict[str, str] = {
    "scope": "any", "clock": "order", "return_window": "7d", "auto_receive_after": "10d",
}


class ConfigError(ValueError):
    """A configuration problem, described in one line."""


class Rules(msgspec.Struct, frozen=True, kw_only=True):
    """The rules in force; durations are kept as written and in microseconds."""

    model: AttributionModel = "last_click"
    window: str = "7d"
    attribution_lock_period: str = "30d"
    self_referral: Literal["allow", "deny", "review"] = "allow"
    level1_rate_bp: int = 1500
    level2_rate_bp: int = 500
    level1_cap_bp: int = 2000
    level2_cap_bp: int = 1000
    order_cap_bp: int = 3000
    # Minor units. Encoded under the TOML key names: the encoding is what
    # ``digest()`` hashes and what recorded rules are checked against.
    order_cap_amount_minor: Union[int, None] = msgspec.field(default=None, name="order_cap_amount")
    settlement_lock_period: str = "15d"
    min_payout_minor: int = msgspec.field(default=100, name="min_payout")
    # SPEC §16; 0 = off. Left out of digest() and to_toml() while 0, so the
    # recorded rules of a store written before it keep their digest.
    review_amount_over_minor: int = msgspec.field(default=0, name="amount_over")
    scope: Scope = "any"  # SPEC §14
    clock: Clock = "order"  # SPEC §15
    return_window: str = "7d"
    auto_receive_after: str = "10d"

    def __post_init__(self) -> None:
        if self.model == "customer_lock" and self.scope == "product":
            raise ConfigError('attribution.model = "customer_lock" with attribution.scope = "product": '
                              "a binding is per buyer or per (buyer, merchant), never per product (SPEC §14)")

    @property
    def window_us(self) -> int:
        return parse_duration_us(self.window)

    @property
    def attribution_lock_us(self) -> int:
        return parse_duration_us(self.attribution_lock_period)

    @property
    def settlement_lock_us(self) -> int:
        return parse_duration_us(self.settlement_lock_period)

    @property
    def return_window_us(self) -> int:
        return parse_duration_us(self.return_window)

    @property
    def auto_receive_after_us(self) -> int:
        return parse_duration_us(self.auto_receive_after)

    def digest(self) -> str:
        """Stable identity of these rules (same rules, same digest). Keys added
        later (issue 20's scope and clock, §16's amount_over) count only when not
        at their default, so the digests of rules recorded before them stand."""
        value = msgspec.to_builtins(self)
        if not self.review_amount_over_minor:
            del value["amount_over"]
        for key, default in _LATER_DEFAULTS.items():
            if value[key] == default:
                del value[key]
        return hashlib.sha256(msgspec.json.encode(value)).hexdigest()[:16]

    def to_toml(self) -> str:
        lines = [
            "[attribution]",
            f'model = "{self.model}"',
            f'window = "{self.window}"',
            f'lock_period = "{self.attribution_lock_period}"',
            f'self_referral = "{self.self_referral}"',
        ]
        if self.scope != "any":
            lines.append(f'scope = "{self.scope}"')
        lines += [
            "",
            "[commission]",
            f"level1_rate_bp = {self.level1_rate_bp}",
            f"level2_rate_bp = {self.level2_rate_bp}",
            f"level1_cap_bp = {self.level1_cap_bp}",
            f"level2_cap_bp = {self.level2_cap_bp}",
            f"order_cap_bp = {self.order_cap_bp}",
        ]
        if self.order_cap_amount_minor is not None:
            lines.append(f"order_cap_amount = {self.order_cap_amount_minor}")
        lines += [
            "",
            "[settlement]",
            f'lock_period = "{self.settlement_lock_period}"',
            f"min_payout = {self.min_payout_minor}",
        ]
        for key in ("clock", "return_window", "auto_receive_after"):  # recorded when set (digests of before)
            if getattr(self, key) != _LATER_DEFAULTS[key]:
                lines.append(f'{key} = "{getattr(self, key)}"')
        if self.review_amount_over_minor:
            lines += ["", "[review]", f"amount_over = {self.review_amount_over_minor}"]
        return "\n".join(lines) + "\n"


DEFAULT_RULES = Rules()


def parse_duration_us(text: str) -> int:
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ConfigError(f"bad duration {text!r}: expected <integer><d|h|m|s>, e.g. \"7d\"")
    return int(match.group(1)) * US_PER_UNIT[match.group(2)]


# section → key → (field name, kind)
_SCHEMA: dict[str, dict[str, tuple[str, str]]] = {
    "attribution": {
        "model": ("model", "model"),
        "window": ("window", "duration"),
        "lock_period": ("attribution_lock_period", "duration"),
        "self_referral": ("self_referral", "self_referral"),
        "scope": ("scope", "scope"),
    },
    "commission": {
        "level1_rate_bp": ("level1_rate_bp", "bp"),
        "level2_rate_bp": ("level2_rate_bp", "bp"),
        "level1_cap_bp": ("level1_cap_bp", "bp"),
        "level2_cap_bp": ("level2_cap_bp", "bp"),
        "order_cap_bp": ("order_cap_bp", "bp"),
        "order_cap_amount": ("order_cap_amount_minor", "amount"),
    },
    "settlement": {
        "lock_period": ("settlement_lock_period", "duration"),
        "min_payout": ("min_payout_minor", "amount"),
        "clock": ("clock", "clock"),
        "return_window": ("return_window", "duration"),
        "auto_receive_after": ("auto_receive_after", "duration"),
    },
    "review": {
        "amount_over": ("review_amount_over_minor", "amount"),
    },
}
_CHOICES = {
    "model": ("last_click", "first_click", "customer_lock"),
    "self_referral": ("allow", "deny", "review"),
    "scope": ("any", "merchant", "product"),
    "clock": ("order", "receipt"),
}


def _check_value(where: str, kind: str, value: Any) -> Any:
    if kind in _CHOICES:
        if value not in _CHOICES[kind] or not isinstance(value, str):
            raise ConfigError(f"{where} = {value!r}: expected one of {', '.join(_CHOICES[kind])}")
        return value
    if kind == "duration":
        if not isinstance(value, str):
            raise ConfigError(f"{where} = {value!r}: expected a duration string like \"7d\"")
        try:
            parse_duration_us(value)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return value
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{where} = {value!r}: expected an integer")
    upper = MAX_RATE_BP if kind == "bp" else MAX_SAFE_INT
    if not 0 <= value <= upper:
        raise ConfigError(f"{where} = {value}: expected 0 to {upper}")
    return value


def rules_from_mapping(data: dict[str, Any]) -> Rules:
    fields: dict[str, Any] = {}
    for section, table in data.items():
        if _THIRD_LEVEL.search(section):
            raise ConfigError(f"[{section}]: a third commission level is not allowed (two levels at most)")
        if section not in _SCHEMA:
            raise ConfigError(f"unknown section [{section}]; expected {', '.join(_SCHEMA)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{section} must be a table")
        for key, value in table.items():
            where = f"{section}.{key}"
            if _THIRD_LEVEL.search(key):
                raise ConfigError(f"{where}: a third commission level is not allowed (two levels at most)")
            if key not in _SCHEMA[section]:
                known = ", ".join(_SCHEMA[section])
                raise ConfigError(f"unknown key {where}; expected one of {known}")
            field, kind = _SCHEMA[section][key]
            fields[field] = _check_value(where, kind, value)
    return Rules(**fields)


def rules_from_toml_text(text: str) -> Rules:
    """Rules from TOML text (as recorded in the journal)."""
    return rules_from_mapping(tomllib.loads(text))


def load_rules(path: str | None) -> Rules:
    """Rules from a TOML file, or the built-in defaults when ``path`` is None."""
    if path is None:
        return DEFAULT_RULES
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    try:
        return rules_from_mapping(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
