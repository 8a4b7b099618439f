"""SPEC §2 (program rules) and §10 (exit 2, one line on stderr, nothing written)."""

from __future__ import annotations

import json
import tomllib

import msgspec
import pytest

from cli.main import main
from ledger.config import ConfigError, Rules, load_rules, parse_duration_us, rules_from_mapping
from ledger.store import JournalStore

SPEC_DEFAULTS = {
    "model": "last_click",
    "window": "7d",
    "attribution_lock_period": "30d",
    "self_referral": "allow",
    "level1_rate_bp": 1500,
    "level2_rate_bp": 500,
    "level1_cap_bp": 2000,
    "level2_cap_bp": 1000,
    "order_cap_bp": 3000,
    "order_cap_amount": None,
    "settlement_lock_period": "15d",
    "min_payout": 100,
    "amount_over": 0,
    "scope": "any",  # SPEC §14 (issue 20)
    "clock": "order",  # SPEC §15
    "return_window": "7d",
    "auto_receive_after": "10d",
}

FULL_TOML = """\
[attribution]
model = "customer_lock"
window = "3h"
lock_period = "45d"
self_referral = "deny"

[commission]
level1_rate_bp = 1200
level2_rate_bp = 300
level1_cap_bp = 1800
level2_cap_bp = 600
order_cap_bp = 2500
order_cap_amount = 50000

[settlement]
lock_period = "90m"
min_payout = 5000
"""

FULL_RULES = Rules(
    model="customer_lock", window="3h", attribution_lock_period="45d", self_referral="deny",
    level1_rate_bp=1200, level2_rate_bp=300, level1_cap_bp=1800, level2_cap_bp=600,
    order_cap_bp=2500, order_cap_amount_minor=50000, settlement_lock_period="90m", min_payout_minor=5000,
)


def as_dict(rules: Rules) -> dict:
    """The rules under their encoded names (the TOML keys, what digests hash)."""
    return msgspec.to_builtins(rules)


@pytest.mark.parametrize("rules", [Rules(), load_rules(None), rules_from_mapping({}),
                                   rules_from_mapping({"attribution": {}, "commission": {}, "settlement": {}})],
                         ids=["Rules()", "load_rules(None)", "empty mapping", "empty sections"])
def test_defaults_are_spec_values(rules):
    assert as_dict(rules) == SPEC_DEFAULTS
    assert rules.window_us == 7 * 86_400_000_000
    assert rules.attribution_lock_us == 30 * 86_400_000_000
    assert rules.settlement_lock_us == 15 * 86_400_000_000


def test_full_toml_file_round_trips(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(FULL_TOML)
    rules = load_rules(str(path))
    assert rules == FULL_RULES
    assert (rules.window_us, rules.attribution_lock_us, rules.settlement_lock_us) == (
        3 * 3_600_000_000, 45 * 86_400_000_000, 90 * 60_000_000)
    assert rules_from_mapping(tomllib.loads(rules.to_toml())) == rules
    assert rules_from_mapping(tomllib.loads(Rules().to_toml())) == Rules()
    assert rules.digest() == FULL_RULES.digest() != Rules().digest()


def test_partial_file_keeps_other_defaults(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('[commission]\nlevel2_rate_bp = 0\n')
    assert as_dict(load_rules(str(path))) == {**SPEC_DEFAULTS, "level2_rate_bp": 0}


@pytest.mark.parametrize(
    "text, us",
    [("1d", 86_400_000_000), ("1h", 3_600_000_000), ("1m", 60_000_000), ("1s", 1_000_000),
     ("7d", 604_800_000_000), ("36h", 129_600_000_000), ("0s", 0), ("90m", 5_400_000_000)],
)
def test_durations(text, us):
    assert parse_duration_us(text) == us
    assert rules_from_mapping({"attribution": {"window": text}}).window_us == us
    assert rules_from_mapping({"settlement": {"lock_period": text}}).settlement_lock_us == us


BAD_CONFIGS = {
    "unknown section": "[payouts]\nmin_payout = 100\n",
    "unknown top-level key": "model = \"last_click\"\n",
    "unknown key": "[commission]\nbonus_bp = 10\n",
    "key in wrong section": "[settlement]\nwindow = \"7d\"\n",
    "third level rate": "[commission]\nlevel3_rate_bp = 100\n",
    "third level cap": "[commission]\nlevel3_cap_bp = 100\n",
    "third level section": "[level3]\nrate_bp = 100\n",
    "model random": "[attribution]\nmodel = \"random\"\n",
    "model not a string": "[attribution]\nmodel = 1\n",
    "window 7": "[attribution]\nwindow = \"7\"\n",
    "window 7w": "[attribution]\nwindow = \"7w\"\n",
    "window int": "[attribution]\nwindow = 7\n",
    "window negative": "[attribution]\nwindow = \"-1d\"\n",
    "window fraction": "[attribution]\nwindow = \"1.5d\"\n",
    "window spaced": "[attribution]\nwindow = \"7 d\"\n",
    "window full-width digit": "[attribution]\nwindow = \"７d\"\n",
    "lock_period bad": "[attribution]\nlock_period = \"30days\"\n",
    "settlement lock_period bad": "[settlement]\nlock_period = \"\"\n",
    "rate 10001": "[commission]\nlevel1_rate_bp = 10001\n",
    "rate -1": "[commission]\nlevel2_rate_bp = -1\n",
    "rate true": "[commission]\nlevel1_rate_bp = true\n",
    "rate float": "[commission]\nlevel1_rate_bp = 1500.0\n",
    "cap 10001": "[commission]\norder_cap_bp = 10001\n",
    "order_cap_amount negative": "[commission]\norder_cap_amount = -1\n",
    "min_payout string": "[settlement]\nmin_payout = \"100\"\n",
    "min_payout negative": "[settlement]\nmin_payout = -100\n",
    "self_referral maybe": "[attribution]\nself_referral = \"maybe\"\n",
    "self_referral bool": "[attribution]\nself_referral = true\n",
    "section not a table": "attribution = \"last_click\"\n",
    "invalid toml": "[attribution\nmodel = \"last_click\"\n",
}


@pytest.mark.parametrize("text", BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_config_raises_one_line_error(tmp_path, text):
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_rules(str(path))
    message = str(info.value)
    assert message.strip() and "\n" not in message


@pytest.mark.parametrize(
    "name, needle",
    [("unknown section", "payouts"), ("unknown key", "bonus_bp"), ("third level rate", "level3_rate_bp"),
     ("model random", "random"), ("window 7w", "7w"), ("rate 10001", "level1_rate_bp"),
     ("min_payout string", "min_payout"), ("self_referral maybe", "self_referral")],
)
def test_bad_config_message_names_the_problem(tmp_path, name, needle):
    path = tmp_path / "rules.toml"
    path.write_text(BAD_CONFIGS[name])
    with pytest.raises(ConfigError, match=needle):
        load_rules(str(path))


@pytest.mark.parametrize(
    "mapping",
    [
        {"commission": {"level3_rate_bp": 100}},
        {"attribution": {"model": "random"}},
        {"attribution": {"window": 7}},
        {"commission": {"level1_rate_bp": True}},
        {"settlement": {"min_payout": "100"}},
        {"attribution": {"self_referral": "maybe"}},
    ],
)
def test_bad_mapping_raises(mapping):
    with pytest.raises(ConfigError):
        rules_from_mapping(mapping)


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        load_rules(str(tmp_path / "nope.toml"))


# ------------------------------------------------------------------------- CLI
EVENTS = [
    {"type": "share", "event_id": "e-s1", "occurred_at": "2026-01-01T00:00:00Z", "share_id": "s1", "promoter_id": "p1"},
    {"type": "click", "event_id": "e-c1", "occurred_at": "2026-01-02T00:00:00Z", "buyer_id": "b1", "share_id": "s1"},
    {"type": "order", "event_id": "e-o1", "occurred_at": "2026-01-03T00:00:00Z", "order_id": "o1", "buyer_id": "b1",
     "merchant_id": "m1", "lines": [{"sku": "a", "quantity": 1, "unit_price": 10000}]},
]
MORE = [
    {"type": "order", "event_id": "e-o2", "occurred_at": "2026-01-04T00:00:00Z", "order_id": "o2", "buyer_id": "b1",
     "merchant_id": "m1", "lines": [{"sku": "a", "quantity": 1, "unit_price": 20000}]},
]


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LEDGER_STORE", raising=False)
    monkeypatch.delenv("LEDGER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # a stray default sqlite:///ledger.db would land here
    db = tmp_path / "ledger.db"
    store = f"sqlite:///{db}"

    def write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--store", store, *argv])
        out, err = capsys.readouterr()
        return code, out, err

    run.db, run.store, run.write = db, store, write
    return run


def jsonl(events: list[dict]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


@pytest.mark.parametrize("text", BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_cli_bad_config_exits_2_and_writes_nothing(cli, text):
    events = cli.write("events.jsonl", jsonl(EVENTS))
    bad = cli.write("bad.toml", text)
    code, out, err = cli("--config", bad, "ingest", events)
    assert code == 2
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1 and err.strip()
    assert not cli.db.exists()
    code, out, _ = cli("payouts", "--format", "json")
    assert (code, json.loads(out)) == (0, [])


def test_cli_bad_config_leaves_existing_ledger_untouched(cli):
    events = cli.write("events.jsonl", jsonl(EVENTS))
    more = cli.write("more.jsonl", jsonl(MORE))
    good = cli.write("good.toml", "[settlement]\nmin_payout = 1\n")
    bad = cli.write("bad.toml", "[commission]\nlevel1_rate_bp = 10001\n")
    assert cli("--config", good, "ingest", events)[0] == 0
    records_before = len(list(JournalStore(cli.store).read()))
    expected = [{"promoter_id": "p1", "currency": "CNY", "pending": 1500, "payable": 0, "paid": 0}]
    code, out, _ = cli("payouts", "--format", "json")
    assert code == 0
    assert [{k: row[k] for k in expected[0]} for row in json.loads(out)] == expected

    for argv in (["ingest", more], ["settle", "--as-of", "2026-03-01T00:00:00Z"],
                 ["payout", "--as-of", "2026-03-01T00:00:00Z"]):
        code, out, err = cli("--config", bad, *argv)
        assert (code, out) == (2, ""), argv
        assert err.count("\n") == 1 and err.strip(), argv

    assert len(list(JournalStore(cli.store).read())) == records_before
    code, out, _ = cli("payouts", "--format", "json")
    assert [{k: row[k] for k in expected[0]} for row in json.loads(out)] == expected


def test_review_keys_and_digests_of_rules_recorded_before_them():
    """SPEC §2/§16: self_referral = "review" and [review] amount_over; a rules
    text without them keeps the digest it was recorded with (values computed
    before the keys existed)."""
    assert Rules().digest() == "245b25e9509a5c96"
    assert rules_from_mapping({"attribution": {"self_referral": "deny"}, "commission": {"order_cap_amount": 5}}).digest() == "262f800b43e56fbe"
    assert "[review]" not in Rules().to_toml()
    rules = rules_from_mapping({"attribution": {"self_referral": "review"}, "review": {"amount_over": 500}})
    assert (rules.self_referral, rules.review_amount_over_minor) == ("review", 500)
    assert rules.to_toml().endswith("[review]\namount_over = 500\n")
    assert rules_from_mapping(tomllib.loads(rules.to_toml())) == rules
    assert rules.digest() != rules_from_mapping({"attribution": {"self_referral": "review"}}).digest()
    for bad in ({"review": {"amount_over": -1}}, {"review": {"amount_over": True}}, {"review": {"other": 1}},
                {"attribution": {"self_referral": "flag"}}):
        with pytest.raises(ConfigError):
            rules_from_mapping(bad)
