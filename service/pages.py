"""Server-rendered payout pages: no build step, no CDN, readable on a laptop.

Protected by the same tokens as the API: the login form stores the token in an
``HttpOnly``, ``SameSite=Strict`` session cookie, which the authentication
middleware reads when no ``Authorization`` header is sent. The HTML is in the
Jinja templates of ``templates/``, autoescaped; handlers only gather data.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect
from litestar.template import TemplateConfig

from ledger.books import Books
from ledger.records import PaidOut
from projections.balances import BalanceRow
from projections.dead_letters import dead_letters
from projections.payout_batch import payout_batch, render_batch
from projections.render import render_csv
from service.auth import READ, SESSION_COOKIE, Principal, authenticate
from service.blocking import threaded
from service.chart import charts
from service.state import Service

BATCHES_LISTED = 5


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("service"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["thousands"] = "{:,}".format
    env.filters["segment"] = lambda text: quote(text, safe="")  # text as one URL path segment
    return env


TEMPLATES = TemplateConfig(instance=JinjaTemplateEngine.from_environment(_environment()))


def _page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    """Render in the handler's worker thread: Litestar's ``Template`` response
    would render on the event loop, and the balances page has a row per
    (promoter, currency)."""
    html = request.app.template_engine.get_template(template).render(**context)
    return Response(html, status_code=status, media_type=MediaType.HTML)


def error_page(request: Request, status: int, message: str) -> Response:
    """An error as a page; 401 sends the browser to the login form."""
    if status == 401:
        return Redirect("/login")
    return _page(request, "error.html", status, title=f"Error {status}", message=message)


def _session_cookie(token: str, **extra: Any) -> Cookie:
    return Cookie(key=SESSION_COOKIE, value=token, httponly=True, samesite="strict", path="/", **extra)


@get("/login", exclude_from_auth=True, sync_to_thread=False)
def login_form(request: Request) -> Response:
    return _page(request, "login.html", title="Log in", failed=False)


@post("/login", exclude_from_auth=True, sync_to_thread=False)
def login(request: Request, service: Service,
          data: dict[str, str] = Body(media_type=RequestEncodingType.URL_ENCODED)) -> Response:
    token = (data or {}).get("token", "")
    if authenticate(service.tokens, token) is None:
        return _page(request, "login.html", 401, title="Log in", failed=True)
    return Redirect("/", cookies=[_session_cookie(token)])


@post("/logout", exclude_from_auth=True, sync_to_thread=False)
def logout() -> Response:
    return Redirect("/login", cookies=[_session_cookie("", max_age=0)])


def _in_currency(rows: list[BalanceRow], currency: str | None) -> list[BalanceRow]:
    return [r for r in rows if currency is None or r.currency == currency]


def _totals(record: PaidOut) -> list[tuple[str, int]]:
    """What a payout paid per currency, in currency order."""
    totals: dict[str, int] = {}
    for t in record.transfers:
        totals[t.currency] = totals.get(t.currency, 0) + t.amount_minor
    return sorted(totals.items())


@get("/", guards=[READ])
@threaded
def balances_page(request: Request[Principal, Any, Any], service: Service, currency: str | None = None) -> Response:
    rows = service.cache.rows()
    payouts = Books(service.store).recorded_payouts()[::-1]  # newest first
    return _page(request, "balances.html", title="Balances", who=request.user, position=service.cache.position,
                 rows=_in_currency(rows, currency), currency=currency, currencies=sorted({r.currency for r in rows}),
                 batches=[(position, record, _totals(record)) for position, record in payouts[:BATCHES_LISTED]],
                 older_batches=len(payouts) - BATCHES_LISTED)


@get("/payouts.csv", guards=[READ])
@threaded
def balances_csv(service: Service, currency: str | None = None) -> Response:
    text = render_csv(_in_currency(service.cache.rows(), currency), ("promoter_id", "currency", "pending", "payable", "paid"))
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": "attachment; filename=payouts.csv"})


@get("/payout-batches/{position:int}", guards=[READ])
@threaded
def payout_batch_csv(service: Service, position: int) -> Response:
    """A recorded payout's batch, byte for byte what ``payout --format csv`` printed."""
    books = Books(service.store)
    record = dict(books.recorded_payouts()).get(position)
    if record is None:
        raise NotFoundException(f"no payout at treasury position {position}")
    lines = payout_batch(books.records(), record)
    return Response(render_batch(lines, "csv"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename=payout-{position}.csv"})


@get("/promoters/{promoter_id:str}", guards=[READ])
@threaded
def promoter_page(request: Request, service: Service, promoter_id: str) -> Response:
    entries = service.cache.statement(promoter_id)
    return _page(request, "promoter.html", title=f"Promoter {promoter_id}", entries=entries, charts=charts(entries))


@get("/orders/{order_id:str}", guards=[READ])
@threaded
def order_page(request: Request, service: Service, order_id: str) -> Response:
    view = service.explainer.explain(order_id)
    if view is None:
        return _page(request, "order.html", 404, title=f"Order {order_id}", explanation=None)
    return _page(request, "order.html", title=f"Order {order_id}", explanation=json.dumps(view, indent=2, ensure_ascii=False))


@get("/dead-letters", guards=[READ])
@threaded
def dead_letters_page(request: Request, service: Service) -> Response:
    return _page(request, "dead_letters.html", title="Dead letters", letters=dead_letters(Books(service.store).records()))


handlers = [login_form, login, logout, balances_page, balances_csv, payout_batch_csv, promoter_page, order_page, dead_letters_page]
