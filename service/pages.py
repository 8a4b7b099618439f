"""Server-rendered payout pages: no build step, no CDN, readable on a laptop.

Protected by the same tokens as the API: the login form stores the token in an
``HttpOnly``, ``SameSite=Strict`` session cookie.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect

from ledger.books import Books
from projections.dead_letters import dead_letters
from projections.statements import balance_steps
from projections.render import render_csv
from schemas.timestamps import format_timestamp_us
from service import threaded

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2733;background:#f6f7f9}
header{background:#1d2733;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header a{color:#cfe3ff;text-decoration:none}main{padding:20px 24px;max-width:1200px}
table{border-collapse:collapse;background:#fff;width:100%}th,td{padding:6px 10px;border-bottom:1px solid #e3e6ea;text-align:left}
th{cursor:pointer;background:#eef1f5;user-select:none}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:flex;gap:12px;align-items:center;margin-bottom:12px}pre{background:#fff;padding:12px;overflow:auto}
.err{color:#a40000}.muted{color:#66707a}
"""
SORT_JS = """
document.querySelectorAll('table.sortable th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], rows = Array.from(body.rows);
  const num = th.classList.contains('num'), dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
  rows.sort((a, b) => { const x = a.cells[col].dataset.v ?? a.cells[col].textContent, y = b.cells[col].dataset.v ?? b.cells[col].textContent;
    return (num ? (Number(x) - Number(y)) : x.localeCompare(y)) * dir; });
  rows.forEach(r => body.appendChild(r)); }));
"""
SESSION_COOKIE = "ledger_session"


def _page(title: str, body: str, status: int = 200) -> Response:
    doc = (f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width'>"
           f"<title>{html.escape(title)} · commission-ledger</title><style>{STYLE}</style></head><body>"
           f"<header><strong>commission-ledger</strong><a href='/'>Balances</a><a href='/dead-letters'>Dead letters</a>"
           f"<form method=post action='/logout' style='margin-left:auto'><button>Log out</button></form></header>"
           f"<main><h1>{html.escape(title)}</h1>{body}</main><script>{SORT_JS}</script></body></html>")
    return Response(doc, status_code=status, media_type=MediaType.HTML)


def error_page(status: int, message: str) -> Response:
    if status == 401:
        return Redirect("/login")
    return _page(f"Error {status}", f"<p class=err>{html.escape(message)}</p>", status)


def _viewer(request: Request):
    from service.api import principal

    return principal(request)


def _money(v: int) -> str:
    return f"<td class=num data-v='{v}'>{v:,}</td>"


@get("/login", sync_to_thread=False)
def login_form() -> Response:
    body = ("<form method=post action='/login' class=bar><label>Token <input type=password name=token autofocus required></label>"
            "<button type=submit>Log in</button></form><p class=muted>Finance and auditor tokens are issued by your administrator.</p>")
    return Response(f"<!doctype html><html><head><meta charset=utf-8><title>Log in</title><style>{STYLE}</style></head>"
                    f"<body><main><h1>commission-ledger</h1>{body}</main></body></html>", media_type=MediaType.HTML)


@post("/login", sync_to_thread=False)
def login(request: Request, data: dict[str, str] = Body(media_type=RequestEncodingType.URL_ENCODED)) -> Response:
    from service.auth import authenticate

    token = (data or {}).get("token", "")
    if authenticate(request.app.state.service.tokens, token) is None:
        return Response(f"<!doctype html><meta charset=utf-8><style>{STYLE}</style><main><p class=err>Unknown token.</p>"
                        "<a href='/login'>Try again</a></main>", status_code=401, media_type=MediaType.HTML)
    return Redirect("/", cookies=[Cookie(key=SESSION_COOKIE, value=token, httponly=True, samesite="strict", path="/")])


@post("/logout", sync_to_thread=False)
def logout() -> Response:
    return Redirect("/login", cookies=[Cookie(key=SESSION_COOKIE, value="", max_age=0, httponly=True, samesite="strict", path="/")])


@get("/")
@threaded
def balances_page(request: Request, currency: str | None = None) -> Response:
    who = _viewer(request)
    cache = request.app.state.service.cache
    rows = [r for r in cache.rows() if currency is None or r.currency == currency]
    currencies = sorted({r.currency for r in cache.rows()})
    options = "".join(f"<option{' selected' if c == currency else ''}>{html.escape(c)}</option>" for c in currencies)
    body_rows = "".join(
        f"<tr><td><a href='/promoters/{quote(r.promoter_id, safe='')}'>{html.escape(r.promoter_id)}</a></td>"
        f"<td>{html.escape(r.currency)}</td>{_money(r.pending)}{_money(r.payable)}{_money(r.paid)}</tr>"
        for r in rows
    )
    csv_link = "/payouts.csv" + (f"?currency={quote(currency)}" if currency else "")
    body = (f"<div class=bar><form class=bar method=get action='/'><label>Currency <select name=currency onchange='this.form.submit()'>"
            f"<option value=''>all</option>{options}</select></label></form><a href='{csv_link}'>Download balances CSV</a>"
            f"<span class=muted>{len(rows):,} rows · store position {cache.position} · signed in as {html.escape(who.name)} ({who.role})</span></div>"
            f"{_batches_section(request.app.state.service.store)}"
            "<table class=sortable id=balances><thead><tr><th>Promoter</th><th>Currency</th><th class=num>Pending</th>"
            f"<th class=num>Payable</th><th class=num>Paid</th></tr></thead><tbody>{body_rows}</tbody></table>"
            "<p class=muted>Amounts in minor units (fen). Click a column to sort.</p>")
    return _page("Balances", body)


@get("/payouts.csv")
@threaded
def balances_csv(request: Request, currency: str | None = None) -> Response:
    _viewer(request)
    rows = [r for r in request.app.state.service.cache.rows() if currency is None or r.currency == currency]
    text = render_csv(rows, ("promoter_id", "currency", "pending", "payable", "paid"))
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": "attachment; filename=payouts.csv"})


BATCHES_LISTED = 5


def _batches_section(store) -> str:
    payouts = Books(store).recorded_payouts()[::-1]  # newest first
    if not payouts:
        return "<p class=muted>No payout batches yet.</p>"
    rows = []
    for position, record in payouts[:BATCHES_LISTED]:
        totals: dict[str, int] = {}
        for t in record.transfers:
            totals[t.currency] = totals.get(t.currency, 0) + t.amount_minor
        total_text = ", ".join(f"{c} {v:,}" for c, v in sorted(totals.items())) or "nothing paid"
        rows.append(f"<tr><td>{html.escape(record.as_of)}</td><td class=num>{len(record.transfers):,}</td>"
                    f"<td>{html.escape(total_text)}</td><td><a class=batch-csv href='/payout-batches/{position}'>CSV</a></td></tr>")
    more = f"<p class=muted>{len(payouts) - BATCHES_LISTED:,} older batches not listed.</p>" if len(payouts) > BATCHES_LISTED else ""
    return ("<h2>Payout batches</h2><table id=batches><thead><tr><th>As of</th><th class=num>Lines</th><th>Paid</th>"
            f"<th>CSV (as <code>payout --format csv</code>)</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"
            "<h2>Balances</h2>")


@get("/payout-batches/{position:int}")
@threaded
def payout_batch_csv(request: Request, position: int) -> Response:
    """A recorded payout's batch, byte for byte what ``payout --format csv`` printed."""
    from litestar.exceptions import NotFoundException

    from projections.payout_batch import payout_batch, render_batch

    _viewer(request)
    store = request.app.state.service.store
    record = dict(Books(store).recorded_payouts()).get(position)
    if record is None:
        raise NotFoundException(f"no payout at treasury position {position}")
    lines = payout_batch(Books(store).records(), record)
    return Response(render_batch(lines, "csv"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename=payout-{position}.csv"})


def _chart(entries: list[Any]) -> str:
    """Inline SVG per currency: pending / payable / paid over event time (steps)."""
    return "".join(_currency_chart(c, balance_steps(entries, c)) for c in sorted({e.currency for e in entries}))


def _currency_chart(currency: str, steps: list[tuple[int, int, int, int]]) -> str:
    width, height, pad = 900, 220, 34
    series = {"pending": "#d98c00", "payable": "#1f6feb", "paid": "#2da44e"}
    values = [v for step in steps for v in step[1:]]
    lo, hi = min(0, *values), max(1, *values)
    t0, t1 = steps[0][0], steps[-1][0]

    def x(t: int) -> float:
        return pad + (width - 2 * pad) * ((t - t0) / (t1 - t0) if t1 > t0 else 1.0)

    def y(v: int) -> float:
        return height - pad - (height - 2 * pad) * ((v - lo) / (hi - lo))

    lines = []
    for k, (name, color) in enumerate(series.items(), start=1):
        points = [f"{pad:.1f},{y(0):.1f}"]
        previous = 0
        for step in steps:  # a step: along at the old value, then up or down
            points.append(f"{x(step[0]):.1f},{y(previous):.1f}")
            points.append(f"{x(step[0]):.1f},{y(step[k]):.1f}")
            previous = step[k]
        points.append(f"{width - pad:.1f},{y(previous):.1f}")
        lines.append(f"<polyline fill=none stroke='{color}' stroke-width=2 points='{' '.join(points)}'/>"
                     f"<text x={width - pad - 60} y={pad + 14 * (k - 1)} fill='{color}'>{name}</text>")
    first, last = format_timestamp_us(t0)[:10], format_timestamp_us(t1)[:10]
    return (f"<svg viewBox='0 0 {width} {height}' width='100%' role=img aria-label='{html.escape(currency)} balances over event time'>"
            f"<rect width={width} height={height} fill='#fff'/>"
            f"<line x1={pad} x2={width - pad} y1={y(0):.1f} y2={y(0):.1f} stroke='#ccc'/>"
            f"<text x={pad} y=16>{html.escape(currency)} · {lo:,} … {hi:,} minor units</text>"
            f"<text x={pad} y={height - 8}>{first}</text><text x={width - pad - 80} y={height - 8}>{last}</text>"
            f"{''.join(lines)}</svg>")


def _order_link(order_id: str | None) -> str:
    if order_id is None:
        return ""
    return f"<a href='/orders/{quote(order_id, safe='')}'>{html.escape(order_id)}</a>"


@get("/promoters/{promoter_id:str}")
@threaded
def promoter_page(request: Request, promoter_id: str) -> Response:
    _viewer(request)
    entries = request.app.state.service.cache.statement(promoter_id)
    rows = "".join(
        f"<tr><td>{html.escape(e.journal)}:{e.position}</td><td>{html.escape((e.event_time or '')[:19].replace('T', ' '))}</td><td>{e.kind}</td><td>{html.escape(e.currency)}</td>{_money(e.amount_minor)}"
        f"<td>{e.debit} → {e.credit}</td><td>{_order_link(e.order_id)}</td>"
        f"<td>{e.level or ''}</td><td>{e.rules_version or ''}</td><td>{html.escape(e.cause)}</td>"
        f"{_money(e.pending)}{_money(e.payable)}{_money(e.paid)}</tr>"
        for e in entries
    )
    body = (f"{_chart(entries)}<table class=sortable><thead><tr><th>Journal:position</th><th>Event time (UTC)</th><th>Kind</th><th>Currency</th>"
            "<th class=num>Amount</th><th>Movement</th><th>Order</th><th>Level</th><th>Rules</th><th>Cause</th>"
            f"<th class=num>Pending</th><th class=num>Payable</th><th class=num>Paid</th></tr></thead><tbody>{rows}</tbody></table>")
    return _page(f"Promoter {promoter_id}", body if entries else "<p>No entries.</p>")


@get("/orders/{order_id:str}")
@threaded
def order_page(request: Request, order_id: str) -> Response:
    import json

    _viewer(request)
    view = request.app.state.service.explainer.explain(order_id)
    if view is None:
        return _page(f"Order {order_id}", "<p class=err>Unknown order.</p>", 404)
    return _page(f"Order {order_id}", f"<pre>{html.escape(json.dumps(view, indent=2, ensure_ascii=False))}</pre>")


@get("/dead-letters")
@threaded
def dead_letters_page(request: Request) -> Response:
    _viewer(request)
    letters = dead_letters(Books(request.app.state.service.store).records())
    rows = "".join(
        f"<tr><td>{html.escape(d.journal)}:{d.position}</td><td>{d.reason}</td><td>{html.escape(d.source)}</td>"
        f"<td>{html.escape(d.detail)}</td><td><code>{html.escape(d.raw[:120])}</code></td></tr>"
        for d in letters
    )
    body = (f"<p class=muted>{len(letters):,} dead letters</p><table class=sortable><thead><tr><th>Journal:position</th>"
            f"<th>Reason</th><th>Source</th><th>Detail</th><th>Raw</th></tr></thead><tbody>{rows}</tbody></table>")
    return _page("Dead letters", body)


handlers = [login_form, login, logout, balances_page, balances_csv, payout_batch_csv, promoter_page, order_page, dead_letters_page]
