"""SPEC §2's keys of §14/§15 (issue 20): scope, clock, return_window,
auto_receive_after; customer_lock + product is a configuration error; rules
left at the defaults record, encode and hash exactly as before."""

from __future__ import annotations

import pytest

from ledger.config import DEFAULT_RULES, ConfigError, Rules, rules_from_mapping, rules_from_toml_text

# Digests and the recorded TOML of rules versions as main (before issue 20) wrote them.
MAIN_DEFAULT_DIGEST = "245b25e9509a5c96"
MAIN_LOCK_CAP_DIGEST = "7173866049331c7a"
MAIN_DEFAULT_TOML = """[attribution]
model = "last_click"
window = "7d"
lock_period = "30d"
self_referral = "allow"

[commission]
level1_rate_bp = 1500
level2_rate_bp = 500
level1_cap_bp = 2000
level2_cap_bp = 1000
order_cap_bp = 3000

[settlement]
lock_period = "15d"
min_payout = 100
"""


def test_defaults():
    assert (DEFAULT_RULES.scope, DEFAULT_RULES.clock) == ("any", "order")
    assert DEFAULT_RULES.return_window_us == 7 * 86_400_000_000
    assert DEFAULT_RULES.auto_receive_after_us == 10 * 86_400_000_000


def test_a_store_written_before_keeps_its_digests_and_recorded_rules():
    assert DEFAULT_RULES.digest() == MAIN_DEFAULT_DIGEST
    assert Rules(model="customer_lock", order_cap_amount_minor=5).digest() == MAIN_LOCK_CAP_DIGEST
    assert DEFAULT_RULES.to_toml() == MAIN_DEFAULT_TOML
    assert rules_from_toml_text(MAIN_DEFAULT_TOML) == DEFAULT_RULES
    # the defaults written out explicitly are the same rules, and the same digest
    explicit = rules_from_mapping({"attribution": {"scope": "any"},
                                   "settlement": {"clock": "order", "return_window": "7d", "auto_receive_after": "10d"}})
    assert explicit == DEFAULT_RULES and explicit.digest() == MAIN_DEFAULT_DIGEST


def test_new_keys_are_recorded_and_round_trip():
    rules = rules_from_mapping({"attribution": {"scope": "product"},
                                "settlement": {"clock": "receipt", "return_window": "3d", "auto_receive_after": "12h"}})
    assert (rules.scope, rules.clock, rules.return_window_us, rules.auto_receive_after_us) == (
        "product", "receipt", 3 * 86_400_000_000, 12 * 3_600_000_000)
    text = rules.to_toml()
    assert 'scope = "product"' in text and 'clock = "receipt"' in text
    assert 'return_window = "3d"' in text and 'auto_receive_after = "12h"' in text
    assert rules_from_toml_text(text) == rules
    digests = {rules.digest(), DEFAULT_RULES.digest(), Rules(scope="merchant").digest(), Rules(clock="receipt").digest(),
               Rules(return_window="8d").digest(), Rules(auto_receive_after="9d").digest()}
    assert len(digests) == 6  # every key counts once set


@pytest.mark.parametrize("mapping, needle", [
    ({"attribution": {"scope": "shop"}}, "attribution.scope = 'shop': expected one of any, merchant, product"),
    ({"attribution": {"scope": 1}}, "attribution.scope"),
    ({"settlement": {"clock": "ship"}}, "settlement.clock = 'ship': expected one of order, receipt"),
    ({"settlement": {"return_window": "7"}}, "settlement.return_window"),
    ({"settlement": {"auto_receive_after": 10}}, "settlement.auto_receive_after"),
    ({"settlement": {"scope": "any"}}, "unknown key settlement.scope"),
    ({"attribution": {"clock": "order"}}, "unknown key attribution.clock"),
    ({"attribution": {"model": "customer_lock", "scope": "product"}}, 'customer_lock" with attribution.scope = "product"'),
])
def test_bad_values_are_configuration_errors(mapping, needle):
    with pytest.raises(ConfigError) as info:
        rules_from_mapping(mapping)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_customer_lock_with_merchant_scope_is_fine():
    assert rules_from_mapping({"attribution": {"model": "customer_lock", "scope": "merchant"}}).scope == "merchant"
