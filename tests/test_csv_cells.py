"""CSV cells (SPEC §11): a text cell beginning with =, +, -, @, a tab or a CR is
written with a leading ', numeric columns as numbers — in every CSV the project
writes (projections.render.render_csv is the one writer: CLI, pages, batches)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from projections.payout_batch import BatchEntry, BatchLine, render_batch
from projections.render import FORMULA_START, csv_cell, render, render_csv
from tests.helpers import click, order, share

EXE = os.path.join(os.path.dirname(sys.executable), "commission-ledger")
BALANCE_COLUMNS = ("promoter_id", "currency", "pending", "payable", "paid")

HYPERLINK = '=HYPERLINK("http://x","y")'
MINUS = "-1+1"
AT_SUM = "@SUM(A1)"


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@A1", "\t=1", "\r=1", HYPERLINK, MINUS, AT_SUM, "-"])
def test_text_cells_that_could_be_formulas_get_a_quote(text):
    assert text.startswith(FORMULA_START)
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["alice", "", " =1", "'=1", "1-1", "a=b", "推客", "\n=1", "%1", "|cmd", "0"])
def test_other_text_cells_are_as_they_are(text):
    assert csv_cell(text) == text


@pytest.mark.parametrize("value, text", [(-300, "-300"), (0, "0"), (2**53 - 1, "9007199254740991"), (None, "")])
def test_numbers_stay_numbers_in_any_column(value, text):
    assert csv_cell(value, numeric=True) == csv_cell(value) == text


def test_a_numeric_column_must_hold_integers():
    with pytest.raises(ValueError):
        csv_cell("-300", numeric=True)
    assert csv_cell(True) == "True"  # a bool is not a number


def test_balances_csv_as_the_pages_render_it():
    """service/pages.py calls render_csv without ``numeric``: integers still stay numbers."""
    rows = [{"promoter_id": HYPERLINK, "currency": "CNY", "pending": 0, "payable": -300, "paid": 1500},
            {"promoter_id": "\t-2", "currency": "+US", "pending": 5, "payable": 0, "paid": 0}]
    expected = (
        "promoter_id,currency,pending,payable,paid\n"
        '"\'=HYPERLINK(""http://x"",""y"")",CNY,0,-300,1500\n'
        "'\t-2,'+US,5,0,0\n"
    )
    assert render_csv(rows, BALANCE_COLUMNS) == expected
    assert render_csv(rows, BALANCE_COLUMNS, ("pending", "payable", "paid")) == expected
    assert render(rows, BALANCE_COLUMNS, "csv", ("pending", "payable", "paid")) == expected


def test_payout_batch_csv_escapes_ids_and_keeps_signed_amounts():
    entry = BatchEntry("main", 7, "clawback", -300, "=o1", 1)
    line = BatchLine(AT_SUM, "CNY", 1200, "2026-01-20T00:00:00Z", -300, [BatchEntry("main", 5, "settlement", 1500, "o1", 1), entry])
    assert render_batch([line], "csv") == (
        "promoter_id,currency,amount,as_of,carried_over,entry_count,entries\n"
        "'@SUM(A1),CNY,1200,2026-01-20T00:00:00Z,-300,2,settlement o1 L1 +1500@main:5; clawback =o1 L1 -300@main:7\n"
    )


# ------------------------------------------------- through the console script
def _run(store: str, *argv: str, stdin: bytes | None = None) -> str:
    done = subprocess.run([EXE, "--store", store, *argv], input=stdin, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def test_formula_promoter_ids_through_payout_and_payouts_csv(tmp_path):
    store = f"sqlite:///{tmp_path}/ledger.db"
    events = []
    for n, promoter in enumerate([HYPERLINK, MINUS, AT_SUM], 1):
        events += [share(f"s{n}", promoter, "2026-01-01T00:00:00Z"),
                   click(f"b{n}", f"s{n}", "2026-01-01T12:00:00Z", event_id=f"c{n}"),
                   order(f"o{n}", f"b{n}", "2026-01-02T00:00:00Z", amount=10_000)]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    _run(store, "ingest", str(path))
    _run(store, "settle", "--as-of", "2026-01-20T00:00:00Z")

    lines = _run(store, "payout", "--as-of", "2026-01-20T00:00:00Z", "--format", "csv").splitlines(keepends=True)
    # The last cell names the settlement's journal position: checked by pattern.
    cells = [line.rsplit(",", 1) for line in lines]
    assert [c[0] for c in cells] == [
        "promoter_id,currency,amount,as_of,carried_over,entry_count",
        "'-1+1,CNY,1500,2026-01-20T00:00:00Z,0,1",
        '"\'=HYPERLINK(""http://x"",""y"")",CNY,1500,2026-01-20T00:00:00Z,0,1',
        "'@SUM(A1),CNY,1500,2026-01-20T00:00:00Z,0,1",
    ]
    assert cells[0][1] == "entries\n"
    for (_, entries), n in zip(cells[1:], (2, 1, 3)):
        assert re.fullmatch(rf"settlement o{n} L1 \+1500@\w+:\d+\n", entries), entries

    _run(store, "adjust", AT_SUM, "CNY", "-300", "--reason", "=correction")
    assert _run(store, "payouts", "--format", "csv") == (
        "promoter_id,currency,pending,payable,paid\n"
        "'-1+1,CNY,0,0,1500\n"
        '"\'=HYPERLINK(""http://x"",""y"")",CNY,0,0,1500\n'
        "'@SUM(A1),CNY,0,-300,1500\n"
    )
    # The JSON output keeps the ids as they are: escaping is for CSV cells only.
    assert [r["promoter_id"] for r in json.loads(_run(store, "payouts", "--format", "json"))] == [MINUS, HYPERLINK, AT_SUM]
