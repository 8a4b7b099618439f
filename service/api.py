"""The HTTP API (SPEC §11) and the Litestar app that serves it with the pages.

JSON bodies are the same msgspec Structs and field names as the CLI's
``--format json``. Reads are open to finance and auditors, and a promoter reads
its own rows and statement (SPEC §13); writes need ``finance`` and an
``Idempotency-Key``. Reads answer from the read-model tables
(``projections.readmodels``), lists a page at a time with a ``Link`` header to
the next. Store calls block, so handlers run in worker threads.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable
from urllib.parse import quote, urlencode

import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.di import Provide
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.params import Parameter

from ledger.arguments import parse_as_of, validate_adjustment
from ledger.errors import CommandError
from ledger.books import TREASURY, Also, Books
from ledger.config import ConfigError
from ledger.store import StoreError
from projections import readmodels
from projections.audit import current_heads, last_audit
from projections.readmodels import Page
from service import holds, metrics, pages
from service.auth import OWN, READ, READ_OR_OWN, WRITE, Principal, TokenAuthentication, load_tokens
from service.blocking import threaded
from service.idempotency import Claim, KeyConflict, Render, run_once
from service.state import Service

MAX_BODY_BYTES = 64 * 1024
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


class PayoutRequest(msgspec.Struct, forbid_unknown_fields=True):
    as_of: str


class AdjustmentRequest(msgspec.Struct, forbid_unknown_fields=True):
    promoter_id: str
    currency: str
    amount: int
    reason: str


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type=MediaType.JSON, headers=headers)


def _decode_body(raw: bytes, kind: type) -> Any:
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise ClientException(str(exc).splitlines()[0]) from None
    except msgspec.DecodeError as exc:
        raise ClientException(f"malformed JSON: {str(exc).splitlines()[0]}") from None


def _as_of(text: str) -> int:
    try:
        return parse_as_of(text)
    except CommandError as exc:
        raise ClientException(str(exc)) from None


# ------------------------------------------------------------------- reads
@get("/healthz", exclude_from_auth=True, sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise ClientException(f"limit must be 1 to {MAX_LIMIT}")


def _paged(page: Page, path: str, limit: int, **query: str | None) -> Response:
    """A page as a JSON array, with ``Link: <…>; rel="next"`` while more remain."""
    headers = {}
    if page.next is not None and page.items:
        given = {k: v for k, v in query.items() if v}
        headers["Link"] = f"<{path}?{urlencode({'limit': limit, 'after': page.next, **given})}>; rel=\"next\""
    return _json(page.items, headers=headers)


@get("/v1/payouts", guards=[READ])
@threaded
def list_payouts(service: Service, currency: str | None = None, limit: int = DEFAULT_LIMIT,
                 after: str | None = None, as_of: str | None = None) -> Response:
    _check_limit(limit)
    cursor = None
    if after is not None:
        promoter, _, cur = after.rpartition("|")
        cursor = (promoter, cur)
    window = {"recorded_until_us": _as_of(as_of)} if as_of is not None else {}
    page = readmodels.balances(service.store, currency=currency, after=cursor, limit=limit, **window)
    return _paged(page, "/v1/payouts", limit, currency=currency, as_of=as_of)


@get("/v1/me", guards=[OWN])
@threaded
def my_balances(request: Request[Principal, Any, Any], service: Service) -> Response:
    """A promoter's own rows of ``GET /v1/payouts`` (the same objects)."""
    return _json(readmodels.balances(service.store, promoter_id=request.user.promoter_id).items)


@get("/v1/promoters/{promoter_id:str}/statement", guards=[READ_OR_OWN])
@threaded
def promoter_statement(service: Service, promoter_id: str, limit: int = DEFAULT_LIMIT, after: int = 0) -> Response:
    _check_limit(limit)
    if after < 0:
        raise ClientException("after must be at least 0")
    page = readmodels.statement(service.store, promoter_id, after=after, limit=limit)
    return _paged(page, f"/v1/promoters/{quote(promoter_id, safe='')}/statement", limit)


@get("/v1/merchants/{merchant_id:str}/statement", guards=[READ])
@threaded
def merchant_statement(service: Service, merchant_id: str, from_: str | None = Parameter(query="from", default=None),
                       to: str | None = None) -> Response:
    """SPEC §13: what the merchant owes per order and currency, with totals;
    ``?from=&to=`` select orders by occurred_at (from inclusive, to exclusive)."""
    try:
        bounds = readmodels.period(from_, to)
    except CommandError as exc:
        raise ClientException(str(exc)) from None
    return _json(readmodels.merchant_statement(service.store, merchant_id, **bounds))


@get("/v1/orders/{order_id:str}/explanation", guards=[READ])
@threaded
def order_explanation(service: Service, order_id: str) -> Response:
    view = service.explainer.explain(order_id)
    if view is None:
        raise NotFoundException(f"unknown order {order_id!r}")
    return _json(view)


@get("/v1/orders", guards=[READ])
@threaded
def list_orders(service: Service, awaiting: str | None = None, limit: int = DEFAULT_LIMIT,
                after: str | None = None) -> Response:
    """``?awaiting=receipt``: the orders waiting for receipt (SPEC §15), oldest first, paged."""
    from projections.pending_receipt import pending_receipt

    if awaiting != "receipt":
        raise ClientException("awaiting=receipt is required (the only order listing)")
    _check_limit(limit)
    try:
        page = pending_receipt(service.store, after=after, limit=limit)
    except CommandError as exc:
        raise ClientException(str(exc)) from None
    return _paged(page, "/v1/orders", limit, awaiting="receipt")


@get("/v1/dead-letters", guards=[READ])
@threaded
def list_dead_letters(service: Service, limit: int = DEFAULT_LIMIT, after: int = 0) -> Response:
    _check_limit(limit)
    if after < 0:
        raise ClientException("after must be at least 0")
    return _paged(readmodels.dead_letters(service.store, after=after, limit=limit), "/v1/dead-letters", limit)


@get("/v1/audit/digest", guards=[READ])
@threaded
def audit_digest(service: Service) -> Response:
    """The last completed ``audit replay`` (as recorded in the store) and the
    journals' current heads; never an audit inside the request (SPEC §12)."""
    last = last_audit(service.store)
    heads = [{"journal": h.journal, "position": h.position, "sha256": h.sha256.hex(), "line": h.line()}
             for h in current_heads(service.store)]
    if last is None:
        return _json({"last_audit": None, "current_heads": heads})
    return _json({"last_audit": {"ok": last.ok, "records": last.records, "store_position": last.store_position,
                                 "digest": f"sha256:{last.digest}", "balances_digest": f"sha256:{last.balances_digest}",
                                 "reexecuted": last.reexecuted, "failures": last.failures, "differences": last.differences,
                                 "heads": [{"journal": j, "position": p, "sha256": h} for j, p, h in last.heads]},
                  "current_heads": heads})


@get("/metrics", guards=[READ])
@threaded
def metrics_endpoint(service: Service) -> Response:
    from projections.pending_receipt import awaiting_receipt_count

    metrics.AWAITING_RECEIPT.set(awaiting_receipt_count(service.store))
    text = metrics.render(readmodels.figures(service.store)) + holds.metrics_text(Books(service.store)).encode()
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")


# ------------------------------------------------------------------ writes
def _idempotent(request: Request, service: Service, body: bytes, execute: Callable[[Also], int], render: Render) -> Response:
    key = request.headers.get("idempotency-key")
    if not key or len(key) > 200:
        raise ClientException("an Idempotency-Key header (1-200 characters) is required")
    fingerprint = request.method.encode() + b" " + request.url.path.encode() + b"\n" + body
    try:
        status, payload = run_once(service.store, key, fingerprint, request.user.name, execute, render)
    except KeyConflict:
        raise HTTPException(status_code=409, detail="Idempotency-Key already used with another request") from None
    return Response(payload, status_code=status, media_type=MediaType.JSON)


@post("/v1/payouts", guards=[WRITE])
@threaded
def create_payout(request: Request[Principal, Any, Any], service: Service, body: bytes) -> Response:
    payload: PayoutRequest = _decode_body(body, PayoutRequest)
    _as_of(payload.as_of)

    def execute(also: Also) -> int:
        with service.write_lock:
            position, _, lines = readmodels.pay_out(Books(service.store), payload.as_of, also)
        metrics.PAYOUTS.inc()
        metrics.PAYOUT_LINES.inc(len(lines))
        return position

    def render(claim: Claim) -> tuple[int, bytes]:
        lines = readmodels.payout_batch(service.store, claim.position)
        as_of = readmodels.payout_as_of(service.store, claim.position)
        record = Books(service.store).record_at(TREASURY, claim.position)
        held = [{"promoter_id": p, "currency": c, "payable": n} for p, c, n in getattr(record, "held", [])]  # SPEC §16
        return 201, msgspec.json.encode({"as_of": as_of, "paid_by": claim.actor, "lines": lines, "held": held})

    return _idempotent(request, service, body, execute, render)


@post("/v1/adjustments", guards=[WRITE])
@threaded
def create_adjustment(request: Request[Principal, Any, Any], service: Service, body: bytes) -> Response:
    payload: AdjustmentRequest = _decode_body(body, AdjustmentRequest)
    try:
        validate_adjustment(payload.promoter_id, payload.currency, payload.amount, payload.reason)
    except CommandError as exc:
        raise ClientException(str(exc)) from None

    def execute(also: Also) -> int:
        with service.write_lock:
            position, _ = Books(service.store).adjust_at(payload.promoter_id, payload.currency, payload.amount,
                                                         payload.reason, request.user.name, also)
        metrics.ADJUSTMENTS.inc()
        return position

    def render(claim: Claim) -> tuple[int, bytes]:
        return 201, msgspec.json.encode(Books(service.store).record_at(TREASURY, claim.position))

    return _idempotent(request, service, body, execute, render)


# --------------------------------------------------------------- the app
def _error_response(request: Request, exc: Exception) -> Response:
    """Every error as one line: ``{"error": …}`` for the API, a page (or the login form) for the pages."""
    if isinstance(exc, HTTPException):
        status, message = exc.status_code, str(exc.detail)
        if status == 413 or "too large" in message.lower():
            message = f"request body too large (limit {MAX_BODY_BYTES} bytes)"
    elif isinstance(exc, CommandError):  # a read's argument out of range (e.g. a cursor past 2^63 − 1)
        status, message = 400, str(exc)
    elif isinstance(exc, (StoreError, ConfigError)):
        status, message = 503, str(exc)
    else:
        status, message = 500, "internal error"
        logging.getLogger("commission_ledger.http").error("%s %s failed", request.method, request.url.path, exc_info=exc)
    metrics.ERRORS.labels(str(status)).inc()
    if request.url.path.startswith("/v1/") or request.url.path in ("/metrics", "/healthz"):
        return _json({"error": message.splitlines()[0] if message else "error"}, status)
    return pages.error_page(request, status, message)


def create_app(store_url: str, tokens: dict[str, Principal]) -> Litestar:
    service = Service(store_url, tokens)
    openapi = OpenAPIConfig(title="commission-ledger", version="0.1.0", path="/schema")
    return Litestar(
        route_handlers=[healthz, list_payouts, my_balances, promoter_statement, merchant_statement, order_explanation,
                        list_dead_letters, list_orders, audit_digest, metrics_endpoint, create_payout, create_adjustment,
                        *holds.handlers, *pages.handlers],
        dependencies={"service": Provide(lambda: service, sync_to_thread=False)},
        # Every route needs a token unless it says exclude_from_auth; the OpenAPI schema is public.
        middleware=[DefineMiddleware(TokenAuthentication, tokens=tokens, exclude=[f"^{openapi.path}"])],
        template_config=pages.TEMPLATES,
        exception_handlers={Exception: _error_response},
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=openapi,
        debug=False,
    )


def app_from_env() -> Litestar:
    """App factory for ``serve --workers N`` (each worker process builds its own)."""
    return create_app(os.environ["LEDGER_SERVE_STORE"], load_tokens(os.environ["LEDGER_SERVE_TOKENS"]))
