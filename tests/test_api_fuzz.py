"""Property-based fuzzing of the HTTP API from its own OpenAPI document
(schemathesis): every operation, generated and mutated inputs, with a bounded
budget (``LEDGER_FUZZ_EXAMPLES`` per operation, default 25). For any input:
no 5xx, a documented status code, a declared content type and a body that
matches the operation's response schema.

The app runs in this process over a real SQLite store holding a small network
(ids with ``/`` included) and a dead letter, with a finance token sent on
every call (writes need an ``Idempotency-Key``, which is generated too).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402

EXAMPLES = int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "25"))
TOKEN = "fuzz-finance"


def _app(directory: str):
    from service.api import create_app
    from service.auth import Principal
    from tests.helpers import click, feed, new_ledger, order, share

    store = f"sqlite:///{directory}/ledger.db"
    feed(new_ledger(store_url=store), [
        share("s1", "p1", "2026-01-01T00:00:00Z"), share("s2", "a/b", "2026-01-01T00:00:00Z", parent="s1"),
        click("b1", "s2", "2026-01-02T00:00:00Z"), order("o/1", "b1", "2026-01-02T01:00:00Z", amount=10_000),
        b"{not json",
    ])
    tokens = {hashlib.sha256(TOKEN.encode()).hexdigest(): Principal("fuzzer", "finance")}
    return create_app(store, tokens)


# Loaded at collection (schemathesis parametrizes from the document); the
# store's directory is removed when the module's tests are done.
_DIRECTORY = tempfile.mkdtemp(prefix="ledger-fuzz-")
schema = schemathesis.openapi.from_asgi("/schema/openapi.json", _app(_DIRECTORY),
                                        headers={"Authorization": f"Bearer {TOKEN}"})


CALLS: dict[str, int] = {}  # operation → requests made (printed with -s)


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    shutil.rmtree(_DIRECTORY, ignore_errors=True)
    print(f"\nschemathesis: {sum(CALLS.values())} requests over {len(CALLS)} operations, {EXAMPLES} examples each")


# Not checked: that every schema-valid input is accepted (positive_data_acceptance):
# JSON Schema cannot say what a valid RFC 3339 instant, cursor or limit range is,
# and those answer 400 with the error body, which is checked. Nor the Allow header
# of the automatic OPTIONS answer (allow_header_conformance): Litestar 2.25 lists
# only the first handler's methods where a GET and a POST handler share a path
# (/v1/payouts: "GET, OPTIONS").
from schemathesis.specs.openapi.checks import allow_header_conformance, positive_data_acceptance  # noqa: E402


@schema.exclude(path_regex="^/schema").parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_error_and_responses_match_the_schema(case):
    CALLS[case.operation.label] = CALLS.get(case.operation.label, 0) + 1
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, excluded_checks=[positive_data_acceptance, allow_header_conformance])
