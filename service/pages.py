"""Server-rendered payout pages: no build step, no CDN, readable on a laptop.

Protected by the same tokens as the API: the login form opens a server-side
session (``service.sessions``) whose random id is kept in an ``HttpOnly``,
``SameSite=Strict`` cookie (``Secure`` behind TLS), which the authentication
middleware reads for GET requests when no ``Authorization`` header is sent.
Login and logout check the form's Origin; failed logins are limited per client
(``service.login_limit``). The HTML is in the Jinja templates of
``templates/``, autoescaped, with its CSS and script served from ``/assets/``
(the CSP allows nothing inline); handlers only gather data, a page at a time,
from the read-model tables (``projections.readmodels``). A promoter's login
sees one page, "my earnings" (``/me``); every other page is for finance and
auditors.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any, Iterator
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import Body
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Stream
from litestar.template import TemplateConfig

from projections import readmodels
from projections.payout_batch import render_batch
from projections.render import render_csv
from service.auth import METRICS, OWN, PROMOTER, READ, SESSION_COOKIE, Principal, authenticate
from service.blocking import bounded_read, threaded
from service.chart import charts
from service.headers import is_https, same_origin
from service.login_limit import client_of
from service.rows import balance_rows, statement_rows
from service.sessions import ABSOLUTE_S
from service.state import Service

BATCHES_LISTED = 5
PAGE_ROWS = 1000  # at most, of ?limit=
STATEMENT_ROWS = 100  # statement entries per page
BALANCE_ROWS = 100  # balance rows per page (?limit= up to PAGE_ROWS)
LETTER_ROWS = 200  # dead letters per page
LETTER_RAW_BYTES = 120  # of each dead letter's payload shown
CSV_CHUNK_ROWS = 5000  # rows per SQL page of the streamed CSV
CHART_POINTS = 120  # points per currency of a promoter's chart, whatever its statement's length
ASSETS = {name: files("service").joinpath("templates", name).read_bytes() for name in ("style.css", "sort.js")}
ASSET_TYPES = {"style.css": "text/css; charset=utf-8", "sort.js": "text/javascript; charset=utf-8"}


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("service"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["thousands"] = "{:,}".format
    env.filters["segment"] = lambda text: quote(text, safe="")  # text as one URL path segment
    env.globals["promoter_url"] = lambda promoter_id: promoter_url(promoter_id)
    env.globals["order_url"] = lambda order_id: order_url(order_id)
    return env


TEMPLATES = TemplateConfig(instance=JinjaTemplateEngine.from_environment(_environment()))


def _page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    """Render in the handler's worker thread: Litestar's ``Template`` response
    would render on the event loop, and the balances page has a row per
    (promoter, currency)."""
    user = request.scope.get("user")
    html = request.app.template_engine.get_template(template).render(role=getattr(user, "role", None), **context)
    return Response(html, status_code=status, media_type=MediaType.HTML)


def error_page(request: Request, status: int, message: str) -> Response:
    """An error as a page; 401 sends the browser to the login form."""
    if status == 401:
        return Redirect("/login")
    return _page(request, "error.html", status, title=f"Error {status}", message=message)


def _session_cookie(request: Request, service: Service, value: str, **extra: Any) -> Cookie:
    return Cookie(key=SESSION_COOKIE, value=value, httponly=True, samesite="strict", path="/",
                  secure=is_https(request, service.behind_tls), **extra)


@get("/assets/{name:str}", include_in_schema=False, exclude_from_auth=True, sync_to_thread=False)
def asset(name: str) -> Response:
    """The pages' stylesheet and script (the CSP allows no inline ones)."""
    if name not in ASSETS:
        raise NotFoundException(f"no asset {name!r}")
    return Response(ASSETS[name], media_type=ASSET_TYPES[name], headers={"Cache-Control": "no-cache"})


@get("/login", include_in_schema=False, exclude_from_auth=True, sync_to_thread=False)
def login_form(request: Request) -> Response:
    return _page(request, "login.html", title="Log in", failed=False)


@post("/login", include_in_schema=False, exclude_from_auth=True)
@threaded
def login(request: Request, service: Service,
          data: dict[str, str] = Body(media_type=RequestEncodingType.URL_ENCODED)) -> Response:
    if not same_origin(request):
        return _page(request, "error.html", 403, title="Error 403", message="a login from another site")
    client = client_of(request, service.behind_tls)
    wait_s = service.failed_logins.retry_after_s(client)
    if wait_s:
        response = _page(request, "error.html", 429, title="Error 429",
                         message=f"too many failed logins: try again in {wait_s} s")
        response.headers["Retry-After"] = str(wait_s)
        return response
    token = (data or {}).get("token", "")
    who = authenticate(service.tokens, token)
    if who is None or who.role == METRICS:  # a scraper's token opens no pages
        service.failed_logins.failed(client)
        return _page(request, "login.html", 401, title="Log in", failed=True)
    session_id = service.sessions.open(token)
    return Redirect("/me" if who.role == PROMOTER else "/",
                    cookies=[_session_cookie(request, service, session_id, max_age=ABSOLUTE_S)])


@post("/logout", include_in_schema=False, exclude_from_auth=True)
@threaded
def logout(request: Request, service: Service) -> Response:
    """Ends the session server-side (its cookie no longer reads anything) and clears the cookie."""
    if not same_origin(request):
        return _page(request, "error.html", 403, title="Error 403", message="a logout from another site")
    service.sessions.revoke(request.cookies.get(SESSION_COOKIE))
    return Redirect("/login", cookies=[_session_cookie(request, service, "", max_age=0)])


def _balance_cursor(after: str | None) -> tuple[str, str] | None:
    if after is None:
        return None
    promoter, bar, currency = after.rpartition("|")
    if not bar:
        raise ClientException("after: expected promoter|currency")
    return promoter, currency


@get("/", include_in_schema=False, guards=[READ])
@bounded_read
def balances_page(request: Request[Principal, Any, Any], service: Service, currency: str | None = None,
                  after: str | None = None, limit: int = BALANCE_ROWS) -> Response:
    """A page of balance rows (of one currency), in SQL by the (promoter, currency) cursor."""
    if not 1 <= limit <= PAGE_ROWS:
        raise ClientException(f"limit must be 1 to {PAGE_ROWS}")
    currency = currency or None
    store = service.store
    with readmodels.one_catch_up(store) as position:
        page = readmodels.balances(store, currency=currency, after=_balance_cursor(after), limit=limit)
        batches, count = readmodels.recorded_payouts(store, BATCHES_LISTED)
        total, currencies = readmodels.balance_rows(store, currency), readmodels.currencies(store)
    query = {k: v for k, v in (("currency", currency), ("limit", limit if limit != BALANCE_ROWS else None)) if v}
    next_url = f"/?{urlencode({**query, 'after': page.next})}" if page.next is not None else None
    return _page(request, "balances.html", title="Balances", who=request.user, position=position, rows=page.items,
                 rows_html=balance_rows(page.items, promoter_url), total=total, currency=currency, currencies=currencies,
                 batches=batches, older_batches=count - len(batches), next_url=next_url,
                 first_url=f"/?{urlencode(query)}" if after is not None else None)


@get("/payouts.csv", include_in_schema=False, guards=[READ], sync_to_thread=False)  # builds the stream only; Litestar reads it in threads
def balances_csv(service: Service, currency: str | None = None) -> Stream:
    """Every balance row (of one currency) as CSV, streamed: read from SQL
    ``CSV_CHUNK_ROWS`` at a time by cursor, so memory and time to first byte do
    not grow with the table. Each chunk is read as the tables stand then."""
    currency = currency or None
    columns = ("promoter_id", "currency", "pending", "payable", "paid")

    def chunks() -> Iterator[bytes]:
        cursor = None
        header = True
        while True:
            page = readmodels.balances(service.store, currency=currency, after=cursor, limit=CSV_CHUNK_ROWS)
            text = render_csv(page.items, columns)
            yield (text if header else text.split("\n", 1)[1]).encode()
            header = False
            if page.next is None:
                return
            cursor = _balance_cursor(page.next)

    return Stream(chunks(), media_type="text/csv; charset=utf-8",
                  headers={"Content-Disposition": "attachment; filename=payouts.csv"})


@get("/payout-batches/{position:int}", include_in_schema=False, guards=[READ])
@threaded
def payout_batch_csv(service: Service, position: int) -> Response:
    """A recorded payout's batch, byte for byte what ``payout --format csv`` printed."""
    lines = readmodels.payout_batch(service.store, position)
    if lines is None:
        raise NotFoundException(f"no payout at treasury position {position}")
    return Response(render_batch(lines, "csv"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename=payout-{position}.csv"})


def _statement_page(request: Request, service: Service, promoter_id: str, after: int, title: str, path: str,
                    **context: Any) -> Response:
    """A statement page: a page of entries, and one chart per currency of at
    most ``CHART_POINTS`` points (from SQL, whatever the statement's length)."""
    with readmodels.one_catch_up(service.store):
        page = readmodels.statement(service.store, promoter_id, after=max(after, 0), limit=STATEMENT_ROWS)
        points = readmodels.chart_entries(service.store, promoter_id, CHART_POINTS) if page.items else []
        if context.get("balances") is True:  # /me: its own balances too
            context["balances"] = readmodels.balances(service.store, promoter_id=promoter_id).items
    next_url = f"{path}{'&' if '?' in path else '?'}after={page.next}" if page.next is not None else None
    user = request.scope.get("user")
    link = None if getattr(user, "role", None) == PROMOTER else order_url  # explanations are not a promoter's
    return _page(request, "promoter.html", title=title, entries=page.items, entries_html=statement_rows(page.items, link),
                 charts=charts(points), next_url=next_url, **context)


def promoter_url(promoter_id: str) -> str:
    """A promoter page's address: the id as a path when it has no ``/`` (a
    proxy may decode ``%2F``), else as ``?id=`` (any characters)."""
    if "/" in promoter_id or not promoter_id:
        return f"/promoter?{urlencode({'id': promoter_id})}"
    return f"/promoters/{quote(promoter_id, safe='')}"


def order_url(order_id: str) -> str:
    if "/" in order_id or not order_id:
        return f"/order?{urlencode({'id': order_id})}"
    return f"/orders/{quote(order_id, safe='')}"


@get("/promoters/{promoter_id:str}", include_in_schema=False, guards=[READ])
@bounded_read
def promoter_page(request: Request, service: Service, promoter_id: str, after: int = 0) -> Response:
    return _statement_page(request, service, promoter_id, after, f"Promoter {promoter_id}", promoter_url(promoter_id),
                           balances=None)


@get("/promoter", include_in_schema=False, guards=[READ])
@bounded_read
def promoter_page_by_query(request: Request, service: Service, id: str, after: int = 0) -> Response:  # noqa: A002
    """The promoter page of any id, ``/`` included (``?id=``)."""
    return _statement_page(request, service, id, after, f"Promoter {id}", promoter_url(id), balances=None)


@get("/me", include_in_schema=False, guards=[OWN])
@bounded_read
def my_earnings(request: Request[Principal, Any, Any], service: Service, after: int = 0) -> Response:
    """A promoter's own page: its balances, statement and chart."""
    promoter_id = request.user.promoter_id
    return _statement_page(request, service, promoter_id, after, f"My earnings ({promoter_id})", "/me",  # type: ignore[arg-type]
                           balances=True)


@get("/orders/{order_id:str}", include_in_schema=False, guards=[READ])
@threaded
def order_page(request: Request, service: Service, order_id: str) -> Response:
    return _order_page(request, service, order_id)


@get("/order", include_in_schema=False, guards=[READ])
@threaded
def order_page_by_query(request: Request, service: Service, id: str) -> Response:  # noqa: A002
    """The order page of any id, ``/`` included (``?id=``)."""
    return _order_page(request, service, id)


def _order_page(request: Request, service: Service, order_id: str) -> Response:
    view = service.explainer.explain(order_id)
    if view is None:
        return _page(request, "order.html", 404, title=f"Order {order_id}", explanation=None, hold_state=None, holds=[])
    return _page(request, "order.html", title=f"Order {order_id}", explanation=json.dumps(view, indent=2, ensure_ascii=False),
                 hold_state=view.get("hold_state"), holds=view.get("holds", []))


@get("/dead-letters", include_in_schema=False, guards=[READ])
@bounded_read
def dead_letters_page(request: Request, service: Service, after: int = 0) -> Response:
    page = readmodels.dead_letter_items(service.store, after=max(after, 0), limit=LETTER_ROWS, raw_cap=LETTER_RAW_BYTES)
    return _page(request, "dead_letters.html", title="Dead letters", letters=page.items, after=max(after, 0),
                 next_url=f"/dead-letters?after={page.next}" if page.next is not None else None)


handlers = [asset, login_form, login, logout, balances_page, balances_csv, payout_batch_csv, promoter_page,
            promoter_page_by_query, my_earnings, order_page, order_page_by_query, dead_letters_page]
