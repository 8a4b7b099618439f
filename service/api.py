"""The HTTP API (SPEC §11) and the Litestar app that serves it with the pages.

JSON bodies are the same msgspec Structs and field names as the CLI's
``--format json``. Reads are open to finance and auditors, and a promoter reads
its own rows and statement (SPEC §13); writes need ``finance`` and an
``Idempotency-Key``. Reads answer from the read-model tables
(``projections.readmodels``), lists a page at a time (paged in SQL) with a
``Link`` header to the next. Store calls block, so handlers run in worker
threads. An id with any characters, ``/`` included, is reachable by a query
parameter (``/v1/statement?promoter_id=``, ``/v1/merchant-statement?merchant_id=``,
``/v1/explanation?order_id=``). Errors answer one line; a store or internal
error answers a generic line with a reference (``ref``) to the log line that
holds its detail (paths, hosts and database text stay in the log).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from typing import Any, Callable
from urllib.parse import quote, urlencode

import msgspec
from litestar import Litestar, MediaType, Request, Response, Router, get, post
from litestar.di import Provide
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.params import Parameter

from ledger.arguments import parse_as_of, validate_adjustment
from ledger.errors import CommandError
from ledger.books import TREASURY, Also, Books
from ledger.config import ConfigError
from ledger.store import StoreError
from projections import readmodels
from projections.audit import current_heads, last_audit
from projections.balances import BalanceRow
from projections.dead_letters import DeadLetterItem
from projections.readmodels import Page
from projections.statements import StatementEntry
from service import holds, metrics, pages
from service.auth import OWN, READ, READ_OR_OWN, SCRAPE, WRITE, Principal, TokenAuthentication, load_tokens
from service.blocking import bounded_read, threaded
from service.errors import ERRORS, ErrorBody
from service.headers import security_headers
from service.idempotency import Claim, KeyConflict, Render, run_once
from service.state import Service

MAX_BODY_BYTES = 64 * 1024
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
LETTERS_DEFAULT_LIMIT = 100
LETTER_RAW_BYTES = 1024  # of each dead letter's payload in a list (the rest: /v1/dead-letters/{n}/raw)
LOG = logging.getLogger("commission_ledger.http")


class PayoutRequest(msgspec.Struct, forbid_unknown_fields=True):
    as_of: str


class AdjustmentRequest(msgspec.Struct, forbid_unknown_fields=True):
    promoter_id: str
    currency: str
    amount: int
    reason: str


JSON_ANY = dict[str, Any]


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type=MediaType.JSON, headers=headers)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ClientException(f"duplicate key {twice[:40]!r} in the JSON body")
    return dict(pairs)


def _decode_body(raw: bytes, kind: type) -> Any:
    """The body as ``kind``; 400 for malformed JSON, a wrong shape or a key
    given twice (parsers disagree on which one wins: refused, not guessed)."""
    try:
        value = msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise ClientException(str(exc).splitlines()[0]) from None
    except msgspec.DecodeError as exc:
        raise ClientException(f"malformed JSON: {str(exc).splitlines()[0]}") from None
    json.loads(raw, object_pairs_hook=_no_duplicate_keys)  # msgspec took the last of duplicate keys
    return value


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


@get("/v1/payouts", guards=[READ], responses=ERRORS)
@bounded_read
def list_payouts(service: Service, currency: str | None = None, limit: int = DEFAULT_LIMIT,
                 after: str | None = None, as_of: str | None = None) -> Response[list[BalanceRow]]:
    _check_limit(limit)
    cursor = None
    if after is not None:
        promoter, _, cur = after.rpartition("|")
        cursor = (promoter, cur)
    window = {"recorded_until_us": _as_of(as_of)} if as_of is not None else {}
    body, following = readmodels.balances_json(service.store, currency=currency, after=cursor, limit=limit, **window)
    headers = {}
    if following is not None:
        given = {k: v for k, v in (("currency", currency), ("as_of", as_of)) if v}
        headers["Link"] = f"<{'/v1/payouts'}?{urlencode({'limit': limit, 'after': following, **given})}>; rel=\"next\""
    return Response(body, media_type=MediaType.JSON, headers=headers)


@get("/v1/me", guards=[OWN], responses=ERRORS)
@bounded_read
def my_balances(request: Request[Principal, Any, Any], service: Service) -> Response[list[BalanceRow]]:
    """A promoter's own rows of ``GET /v1/payouts`` (the same objects)."""
    return _json(readmodels.balances(service.store, promoter_id=request.user.promoter_id).items)


def _statement(service: Service, who: str, limit: int, after: int, path: str, **query: str) -> Response:
    _check_limit(limit)
    if after < 0:
        raise ClientException("after must be at least 0")
    page = readmodels.statement(service.store, who, after=after, limit=limit)
    return _paged(page, path, limit, **query)


@get("/v1/promoters/{promoter_id:str}/statement", guards=[READ_OR_OWN], responses=ERRORS)
@bounded_read
def promoter_statement(service: Service, promoter_id: str, limit: int = DEFAULT_LIMIT,
                       after: int = 0) -> Response[list[StatementEntry]]:
    return _statement(service, promoter_id, limit, after, f"/v1/promoters/{quote(promoter_id, safe='')}/statement")


@get("/v1/statement", guards=[READ_OR_OWN], responses=ERRORS)
@bounded_read
def promoter_statement_by_query(service: Service, promoter_id: str, limit: int = DEFAULT_LIMIT,
                                after: int = 0) -> Response[list[StatementEntry]]:
    """``/v1/promoters/{id}/statement`` for any id, ``/`` included."""
    return _statement(service, promoter_id, limit, after, "/v1/statement", promoter_id=promoter_id)


def _merchant(service: Service, who: str, from_: str | None, to: str | None, limit: int, after: str | None,
              path: str, **query: str) -> Response:
    _check_limit(limit)
    try:
        bounds = readmodels.period(from_, to)
    except CommandError as exc:
        raise ClientException(str(exc)) from None
    view = readmodels.merchant_statement(service.store, who, after=after, limit=limit, **bounds)
    following = view.pop("next")
    headers = {}
    if following is not None:
        given = {k: v for k, v in (("from", from_), ("to", to), *query.items()) if v}
        headers["Link"] = f"<{path}?{urlencode({**given, 'limit': limit, 'after': following})}>; rel=\"next\""
    return _json(view, headers=headers)


@get("/v1/merchants/{merchant_id:str}/statement", guards=[READ], responses=ERRORS)
@threaded  # a period's totals are summed over the period: not bounded by the page
def merchant_statement(service: Service, merchant_id: str, from_: str | None = Parameter(query="from", default=None),
                       to: str | None = None, limit: int = DEFAULT_LIMIT, after: str | None = None) -> Response[JSON_ANY]:
    """SPEC §13: what the merchant owes per order and currency, with totals;
    ``?from=&to=`` select orders by occurred_at (from inclusive, to exclusive).
    ``limit`` orders a page (the totals are of every selected order), the next
    page in the ``Link`` header."""
    return _merchant(service, merchant_id, from_, to, limit, after, f"/v1/merchants/{quote(merchant_id, safe='')}/statement")


@get("/v1/merchant-statement", guards=[READ], responses=ERRORS)
@threaded  # a period's totals are summed over the period: not bounded by the page
def merchant_statement_by_query(service: Service, merchant_id: str,
                                from_: str | None = Parameter(query="from", default=None), to: str | None = None,
                                limit: int = DEFAULT_LIMIT, after: str | None = None) -> Response[JSON_ANY]:
    """``/v1/merchants/{id}/statement`` for any id, ``/`` included."""
    return _merchant(service, merchant_id, from_, to, limit, after, "/v1/merchant-statement", merchant_id=merchant_id)


def _explain(service: Service, order_id: str) -> Response:
    view = service.explainer.explain(order_id)
    if view is None:
        raise NotFoundException(f"unknown order {order_id!r}")
    return _json(view)


@get("/v1/orders", guards=[READ], responses=ERRORS)
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


@get("/v1/orders/{order_id:str}/explanation", guards=[READ], responses=ERRORS)
@threaded
def order_explanation(service: Service, order_id: str) -> Response[JSON_ANY]:
    return _explain(service, order_id)


@get("/v1/explanation", guards=[READ], responses=ERRORS)
@threaded
def order_explanation_by_query(service: Service, order_id: str) -> Response[JSON_ANY]:
    """``/v1/orders/{id}/explanation`` for any id, ``/`` included."""
    return _explain(service, order_id)


@get("/v1/dead-letters", guards=[READ], responses=ERRORS)
@bounded_read
def list_dead_letters(service: Service, limit: int = LETTERS_DEFAULT_LIMIT, after: int = 0) -> Response[list[DeadLetterItem]]:
    """Dead letters with at most ``LETTER_RAW_BYTES`` of each payload
    (``raw_truncated`` says when there is more; all of it at ``…/{n}/raw``)."""
    _check_limit(limit)
    if after < 0:
        raise ClientException("after must be at least 0")
    page = readmodels.dead_letter_items(service.store, after=after, limit=limit, raw_cap=LETTER_RAW_BYTES)
    return _paged(page, "/v1/dead-letters", limit)


@get("/v1/dead-letters/{n:int}/raw", guards=[READ], responses=ERRORS, media_type="application/octet-stream")
@threaded
def dead_letter_raw(service: Service, n: int) -> Response[bytes]:
    """One dead letter's payload, every byte, as it arrived."""
    raw = readmodels.dead_letter_raw(service.store, n)
    if raw is None:
        raise NotFoundException(f"no dead letter {n}")
    return Response(raw, media_type="application/octet-stream",
                    headers={"Content-Disposition": f"attachment; filename=dead-letter-{n}.bin"})


@get("/v1/audit/digest", guards=[READ], responses=ERRORS)
@threaded
def audit_digest(service: Service) -> Response[JSON_ANY]:
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


@get("/metrics", guards=[SCRAPE], responses=ERRORS, media_type="text/plain; version=0.0.4; charset=utf-8")
@threaded
def metrics_endpoint(service: Service) -> Response[str]:
    from projections.pending_receipt import awaiting_receipt_count

    metrics.AWAITING_RECEIPT.set(awaiting_receipt_count(service.store))
    text = metrics.render(readmodels.figures(service.store)) + holds.metrics_text(Books(service.store)).encode()
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")


# ------------------------------------------------------------------ writes
def _idempotent(request: Request, service: Service, canonical: bytes, execute: Callable[[Also], int],
                render: Render) -> Response:
    key = request.headers.get("idempotency-key")
    if not key or len(key) > 200:
        raise ClientException("an Idempotency-Key header (1-200 characters) is required")
    # The request as parsed (whitespace and key order aside), not its bytes.
    fingerprint = request.method.encode() + b" " + request.url.path.encode() + b"\n" + canonical
    try:
        status, payload = run_once(service.store, key, fingerprint, request.user.name, execute, render)
    except KeyConflict:
        raise HTTPException(status_code=409, detail="Idempotency-Key already used with another request") from None
    return Response(payload, status_code=status, media_type=MediaType.JSON)


@post("/v1/payouts", guards=[WRITE], responses=ERRORS)
@threaded
def create_payout(request: Request[Principal, Any, Any], service: Service, body: bytes) -> Response[JSON_ANY]:
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

    return _idempotent(request, service, msgspec.json.encode(payload), execute, render)


@post("/v1/adjustments", guards=[WRITE], responses=ERRORS)
@threaded
def create_adjustment(request: Request[Principal, Any, Any], service: Service, body: bytes) -> Response[JSON_ANY]:
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

    return _idempotent(request, service, msgspec.json.encode(payload), execute, render)


# --------------------------------------------------------------- the app
def _error_response(request: Request, exc: Exception) -> Response:
    """Every error as one line: ``{"error": …}`` for the API, a page (or the
    login form) for the pages. A store or internal error tells the client only
    that it happened and its reference; the detail (store path, PostgreSQL
    host and user, the database's text, the traceback) goes to the log line
    with that reference."""
    ref = None
    extra: dict[str, str] = {}
    if isinstance(exc, HTTPException):
        status, message = exc.status_code, str(exc.detail)
        extra = dict(exc.headers or {})  # e.g. a 405's Allow
        if status == 413 or "too large" in message.lower():
            message = f"request body too large (limit {MAX_BODY_BYTES} bytes)"
        elif status >= 500:
            ref = secrets.token_hex(6)
            LOG.error("ref %s: %s %s: %s", ref, request.method, request.url.path, message.splitlines()[0] if message else status)
            message = "internal error"
    elif isinstance(exc, CommandError):  # a read's argument out of range (e.g. a cursor past 2^63 − 1)
        status, message = 400, str(exc)
    elif isinstance(exc, (StoreError, ConfigError)):
        status, message, ref = 503, "the store is unavailable", secrets.token_hex(6)
        LOG.error("ref %s: %s %s: %s", ref, request.method, request.url.path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    else:
        status, message, ref = 500, "internal error", secrets.token_hex(6)
        LOG.error("ref %s: %s %s failed", ref, request.method, request.url.path, exc_info=exc)
    metrics.ERRORS.labels(str(status)).inc()
    line = message.splitlines()[0] if message else "error"
    if ref is not None:
        line = f"{line} (ref {ref})"
    if request.url.path.startswith(("/v1/", "/schema")) or request.url.path in ("/metrics", "/healthz"):
        body: dict[str, str] = {"error": line}
        if ref is not None:
            body["ref"] = ref
        if status == 401:
            extra["WWW-Authenticate"] = 'Bearer realm="commission-ledger"'
        return _json(body, status, extra or None)
    response = pages.error_page(request, status, line)
    response.headers.update(extra)
    return response


def create_app(store_url: str, tokens: dict[str, Principal], *, behind_tls: bool = False) -> Litestar:
    service = Service(store_url, tokens, behind_tls=behind_tls)
    # The OpenAPI document only, as JSON, for finance and auditors (no doc
    # pages: Litestar's load their scripts from CDNs).
    openapi = OpenAPIConfig(title="commission-ledger", version="0.1.0", path="/schema",
                            render_plugins=[JsonRenderPlugin()],
                            openapi_router=Router(path="/schema", route_handlers=[], guards=[READ]))
    return Litestar(
        route_handlers=[healthz, list_payouts, my_balances, promoter_statement, promoter_statement_by_query,
                        merchant_statement, merchant_statement_by_query, order_explanation, order_explanation_by_query,
                        list_orders, list_dead_letters, dead_letter_raw, audit_digest, metrics_endpoint, create_payout,
                        create_adjustment, *holds.handlers, *pages.handlers],
        dependencies={"service": Provide(lambda: service, sync_to_thread=False)},
        # Every route needs a token unless it says exclude_from_auth (the
        # schema too); every answer carries the security headers.
        middleware=[security_headers(behind_tls),
                    DefineMiddleware(TokenAuthentication, tokens=tokens, sessions=service.sessions)],
        template_config=pages.TEMPLATES,
        exception_handlers={Exception: _error_response},
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=openapi,
        debug=False,
    )


def app_from_env() -> Litestar:
    """App factory for ``serve --workers N`` (each worker process builds its own)."""
    return create_app(os.environ["LEDGER_SERVE_STORE"], load_tokens(os.environ["LEDGER_SERVE_TOKENS"]),
                      behind_tls=os.environ.get("LEDGER_SERVE_BEHIND_TLS") == "1")
