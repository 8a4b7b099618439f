"""The HTTP API and payout pages on Litestar (SPEC §11).

JSON bodies are the same msgspec Structs and field names as the CLI's
``--format json``. Reads are open to both roles; writes need ``finance`` and an
``Idempotency-Key``. Store calls are blocking, so handlers run in threads.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig

from ledger.app import CommandError, parse_as_of
from ledger.books import Books
from ledger.config import ConfigError
from ledger.store import Store, StoreError
from projections.balances import balance_rows
from projections.dead_letters import dead_letters
from projections.explain import Explainer
from service import metrics, pages, threaded
from service.auth import Principal, authenticate
from service.cache import BalancesCache
from service.idempotency import KeyConflict, KeyInProgress, run_once

MAX_BODY_BYTES = 64 * 1024
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
SESSION_COOKIE = "ledger_session"


class ApiError(HTTPException):
    pass


class PayoutRequest(msgspec.Struct, forbid_unknown_fields=True):
    as_of: str


class AdjustmentRequest(msgspec.Struct, forbid_unknown_fields=True):
    promoter_id: str
    currency: str
    amount: int
    reason: str


class Service:
    """Shared state of one server process."""

    def __init__(self, store_url: str, tokens: dict[str, Principal]) -> None:
        self.store = Store(store_url)
        self.tokens = tokens
        self.cache = BalancesCache(self.store)
        self.explainer = Explainer(self.store)  # replays each journal on first use, then catches up
        self.write_lock = threading.Lock()  # one write at a time per process; the store serialises across processes


def _error(status: int, message: str) -> ApiError:
    return ApiError(status_code=status, detail=message)


def principal(request: Request, role: str | None = None) -> Principal:
    """The caller, from ``Authorization: Bearer`` or the page session cookie."""
    service: Service = request.app.state.service
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(SESSION_COOKIE)
    who = authenticate(service.tokens, token)
    if who is None:
        raise _error(401, "missing or unknown token")
    if role is not None and who.role != role:
        raise _error(403, f"role {who.role} may not do this")
    return who


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type=MediaType.JSON, headers=headers)


def _decode_body(raw: bytes, kind: type) -> Any:
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise _error(400, str(exc).splitlines()[0]) from None
    except msgspec.DecodeError as exc:
        raise _error(400, f"malformed JSON: {str(exc).splitlines()[0]}") from None


# ------------------------------------------------------------------- reads
@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/v1/payouts")
@threaded
def list_payouts(request: Request, currency: str | None = None, limit: int = DEFAULT_LIMIT,
                 after: str | None = None, as_of: str | None = None) -> Response:
    principal(request)
    service: Service = request.app.state.service
    if not 1 <= limit <= MAX_LIMIT:
        raise _error(400, f"limit must be 1 to {MAX_LIMIT}")
    cursor = None
    if after is not None:
        promoter, _, cur = after.rpartition("|")
        cursor = (promoter, cur)
    if as_of is not None:
        rows = balance_rows(Books(service.store).balances(recorded_until_us=_as_of(as_of)), currency)
        start = 0 if cursor is None else next((i for i, r in enumerate(rows) if (r.promoter_id, r.currency) > cursor), len(rows))
        page, more = rows[start:start + limit], start + limit < len(rows)
    else:
        page, more = service.cache.page(currency=currency, after=cursor, limit=limit)
    headers = {}
    if more and page:
        query = {"limit": limit, "after": f"{page[-1].promoter_id}|{page[-1].currency}"}
        if currency:
            query["currency"] = currency
        if as_of:
            query["as_of"] = as_of
        headers["Link"] = f"</v1/payouts?{urlencode(query)}>; rel=\"next\""
    return _json(page, headers=headers)


def _as_of(text: str) -> int:
    try:
        return parse_as_of(text)
    except CommandError as exc:
        raise _error(400, str(exc)) from None


@get("/v1/promoters/{promoter_id:str}/statement")
@threaded
def promoter_statement(request: Request, promoter_id: str) -> Response:
    principal(request)
    service: Service = request.app.state.service
    return _json(service.cache.statement(promoter_id))


@get("/v1/orders/{order_id:str}/explanation")
@threaded
def order_explanation(request: Request, order_id: str) -> Response:
    principal(request)
    view = request.app.state.service.explainer.explain(order_id)
    if view is None:
        raise _error(404, f"unknown order {order_id!r}")
    return _json(view)


@get("/v1/dead-letters")
@threaded
def list_dead_letters(request: Request) -> Response:
    principal(request)
    return _json(dead_letters(Books(request.app.state.service.store).records()))


@get("/v1/audit/digest")
@threaded
def audit_digest(request: Request) -> Response:
    from projections.audit import audit_replay

    principal(request)
    result = audit_replay(request.app.state.service.store)
    return _json({"records": result.records, "store_position": result.position, "digest": f"sha256:{result.digest}",
                  "matches_live": not result.differences and not result.unbalanced, "differences": result.differences})


@get("/metrics")
@threaded
def metrics_endpoint(request: Request) -> Response:
    principal(request)
    service: Service = request.app.state.service
    service.cache.refresh()
    body = metrics.render(service.cache)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


# ------------------------------------------------------------------ writes
def _idempotent(request: Request, body: bytes, execute) -> Response:
    key = request.headers.get("idempotency-key")
    if not key or len(key) > 200:
        raise _error(400, "an Idempotency-Key header (1-200 characters) is required")
    service: Service = request.app.state.service
    fingerprint = request.method.encode() + b" " + request.url.path.encode() + b"\n" + body
    try:
        status, payload = run_once(service.store, key, fingerprint, execute)
    except KeyConflict:
        raise _error(409, "Idempotency-Key already used with another request") from None
    except KeyInProgress:
        raise _error(409, "a request with this Idempotency-Key is still in progress") from None
    return Response(payload, status_code=status, media_type=MediaType.JSON)


@post("/v1/payouts")
@threaded
def create_payout(request: Request, body: bytes) -> Response:
    who = principal(request, "finance")
    payload: PayoutRequest = _decode_body(body, PayoutRequest)
    _as_of(payload.as_of)
    service: Service = request.app.state.service

    def execute() -> tuple[int, bytes]:
        from projections.payout_batch import payout_batch

        with service.write_lock:
            books = Books(service.store)
            record = books.payout(payload.as_of)
            lines = payout_batch(books.records(), record)
        metrics.PAYOUTS.inc()
        metrics.PAYOUT_LINES.inc(len(lines))
        return 201, msgspec.json.encode({"as_of": record.as_of, "paid_by": who.name, "lines": lines})

    return _idempotent(request, body, execute)


@post("/v1/adjustments")
@threaded
def create_adjustment(request: Request, body: bytes) -> Response:
    who = principal(request, "finance")
    payload: AdjustmentRequest = _decode_body(body, AdjustmentRequest)
    from ledger.app import validate_adjustment

    try:
        validate_adjustment(payload.promoter_id, payload.currency, payload.amount, payload.reason)
    except CommandError as exc:
        raise _error(400, str(exc)) from None
    service: Service = request.app.state.service

    def execute() -> tuple[int, bytes]:
        with service.write_lock:
            record = Books(service.store).adjust(payload.promoter_id, payload.currency, payload.amount, payload.reason, who.name)
        metrics.ADJUSTMENTS.inc()
        return 201, msgspec.json.encode(record)

    return _idempotent(request, body, execute)


# --------------------------------------------------------------- errors
def _error_handler(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        status, message = exc.status_code, str(exc.detail)
        if status == 413 or "too large" in message.lower():
            message = f"request body too large (limit {MAX_BODY_BYTES} bytes)"
    elif isinstance(exc, (StoreError, ConfigError)):
        status, message = 503, str(exc)
    else:
        status, message = 500, "internal error"
        logging.getLogger("commission_ledger.http").error("%s %s failed", request.method, request.url.path, exc_info=exc)
    metrics.ERRORS.labels(str(status)).inc()
    if request.url.path.startswith("/v1/") or request.url.path in ("/metrics", "/healthz"):
        return _json({"error": message.splitlines()[0] if message else "error"}, status)
    return pages.error_page(status, message)


def create_app(store_url: str, tokens: dict[str, Principal]) -> Litestar:
    service = Service(store_url, tokens)
    app = Litestar(
        route_handlers=[healthz, list_payouts, promoter_statement, order_explanation, list_dead_letters, audit_digest,
                        metrics_endpoint, create_payout, create_adjustment, *pages.handlers],
        exception_handlers={Exception: _error_handler},
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(title="commission-ledger", version="0.1.0"),
        debug=False,
    )
    app.state.service = service
    return app


def app_from_env() -> Litestar:
    """App factory for ``serve --workers N`` (each worker process builds its own)."""
    import os

    from service.auth import load_tokens

    return create_app(os.environ["LEDGER_SERVE_STORE"], load_tokens(os.environ["LEDGER_SERVE_TOKENS"]))
