"""Server-rendered payout pages: no build step, no CDN, readable on a laptop.

Protected by the same tokens as the API: the login form stores the token in an
``HttpOnly``, ``SameSite=Strict`` session cookie, which the authentication
middleware reads when no ``Authorization`` header is sent. The HTML is in the
Jinja templates of ``templates/``, autoescaped; handlers only gather data,
from the read-model tables (``projections.readmodels``). A promoter's login
sees one page, "my earnings" (``/me``); every other page is for finance and
auditors.
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

from projections import readmodels
from projections.payout_batch import render_batch
from projections.render import render_csv
from service.auth import OWN, PROMOTER, READ, SESSION_COOKIE, Principal, authenticate
from service.blocking import threaded
from service.chart import charts
from service.state import Service

BATCHES_LISTED = 5
PAGE_ROWS = 1000  # statement entries and dead letters per page


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
    user = request.scope.get("user")
    html = request.app.template_engine.get_template(template).render(role=getattr(user, "role", None), **context)
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
    who = authenticate(service.tokens, token)
    if who is None:
        return _page(request, "login.html", 401, title="Log in", failed=True)
    return Redirect("/me" if who.role == PROMOTER else "/", cookies=[_session_cookie(token)])


@post("/logout", exclude_from_auth=True, sync_to_thread=False)
def logout() -> Response:
    return Redirect("/login", cookies=[_session_cookie("", max_age=0)])


@get("/", guards=[READ])
@threaded
def balances_page(request: Request[Principal, Any, Any], service: Service, currency: str | None = None) -> Response:
    rows = readmodels.balances(service.store).items
    batches, count = readmodels.recorded_payouts(service.store, BATCHES_LISTED)
    return _page(request, "balances.html", title="Balances", who=request.user, position=readmodels.caught_up_position(service.store),
                 rows=[r for r in rows if currency is None or r.currency == currency], currency=currency,
                 currencies=sorted({r.currency for r in rows}), batches=batches, older_batches=count - len(batches))


@get("/payouts.csv", guards=[READ])
@threaded
def balances_csv(service: Service, currency: str | None = None) -> Response:
    rows = readmodels.balances(service.store, currency=currency).items
    text = render_csv(rows, ("promoter_id", "currency", "pending", "payable", "paid"))
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": "attachment; filename=payouts.csv"})


@get("/payout-batches/{position:int}", guards=[READ])
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
    """A statement page: a page of entries, and one chart per currency over all of them."""
    page = readmodels.statement(service.store, promoter_id, after=max(after, 0), limit=PAGE_ROWS)
    everything = readmodels.statement(service.store, promoter_id).items if page.next is not None or after > 0 else page.items
    next_url = f"{path}?after={page.next}" if page.next is not None else None
    return _page(request, "promoter.html", title=title, entries=page.items, charts=charts(everything),
                 next_url=next_url, **context)


@get("/promoters/{promoter_id:str}", guards=[READ])
@threaded
def promoter_page(request: Request, service: Service, promoter_id: str, after: int = 0) -> Response:
    return _statement_page(request, service, promoter_id, after, f"Promoter {promoter_id}",
                           f"/promoters/{quote(promoter_id, safe='')}", balances=None)


@get("/me", guards=[OWN])
@threaded
def my_earnings(request: Request[Principal, Any, Any], service: Service, after: int = 0) -> Response:
    """A promoter's own page: its balances, statement and chart."""
    promoter_id = request.user.promoter_id
    return _statement_page(request, service, promoter_id, after, f"My earnings ({promoter_id})", "/me",  # type: ignore[arg-type]
                           balances=readmodels.balances(service.store, promoter_id=promoter_id).items)


@get("/orders/{order_id:str}", guards=[READ])
@threaded
def order_page(request: Request, service: Service, order_id: str) -> Response:
    view = service.explainer.explain(order_id)
    if view is None:
        return _page(request, "order.html", 404, title=f"Order {order_id}", explanation=None, hold_state=None, holds=[])
    return _page(request, "order.html", title=f"Order {order_id}", explanation=json.dumps(view, indent=2, ensure_ascii=False),
                 hold_state=view.get("hold_state"), holds=view.get("holds", []))


@get("/dead-letters", guards=[READ])
@threaded
def dead_letters_page(request: Request, service: Service, after: int = 0) -> Response:
    page = readmodels.dead_letters(service.store, after=max(after, 0), limit=PAGE_ROWS)
    return _page(request, "dead_letters.html", title="Dead letters", letters=page.items, after=max(after, 0),
                 next_url=f"/dead-letters?after={page.next}" if page.next is not None else None)


handlers = [login_form, login, logout, balances_page, balances_csv, payout_batch_csv, promoter_page, my_earnings, order_page,
            dead_letters_page]
