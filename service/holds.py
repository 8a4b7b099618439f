"""SPEC §16 over HTTP: ``POST /v1/holds``, ``/v1/releases``, ``/v1/rejections``
(finance, with an Idempotency-Key, the command and its key committed in one
transaction), ``GET /v1/holds`` (finance, auditor), and the holds page.

An unknown order is 404; an order already settled or rejected, or nothing in
force to release, is 409; a bad body is 400. The page's forms (finance only)
carry a token derived from the session cookie, which another site can neither
read nor send (the cookie is ``SameSite=Strict``): a cross-site post is 403.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Callable, Union

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, HTTPException, NotFoundException, PermissionDeniedException
from litestar.params import Body
from litestar.response import Redirect

from ledger.arguments import validate_command_text
from ledger.books import TREASURY, Also, Books
from ledger.engine.holds import ORDER, PROMOTER
from ledger.errors import CommandError, ConflictError, NotFoundError
from ledger.records import command_id
from projections.holds import hold_figures
from service import metrics
from service.headers import same_origin
from service.auth import FINANCE, READ, SESSION_COOKIE, WRITE, Principal
from service.blocking import threaded
from service.errors import ERRORS
from service.idempotency import Claim, KeyConflict, run_once
from service.pages import _page
from service.state import Service


class HoldRequest(msgspec.Struct, forbid_unknown_fields=True):
    kind: str
    id: str
    reason: str


class RejectionRequest(msgspec.Struct, forbid_unknown_fields=True):
    order_id: str
    reason: str


def _decode(raw: bytes, kind: type) -> Any:
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise ClientException(str(exc).splitlines()[0]) from None
    except msgspec.DecodeError as exc:
        raise ClientException(f"malformed JSON: {str(exc).splitlines()[0]}") from None


def _checked(kind: str, target_id: str, reason: str, actor: str) -> None:
    if kind not in (ORDER, PROMOTER):
        raise ClientException("kind must be \"order\" or \"promoter\"")
    try:
        validate_command_text(target_id, reason, actor)
    except CommandError as exc:
        raise ClientException(str(exc)) from None


def _status(exc: CommandError) -> HTTPException:
    if isinstance(exc, NotFoundError):
        return NotFoundException(str(exc))
    if isinstance(exc, ConflictError):
        return HTTPException(status_code=409, detail=str(exc))
    return ClientException(str(exc))


Command = Callable[[Books, Also], tuple[str, int, Any]]


def _journal_of(books: Books, kind: str, target_id: str) -> str:
    """Where the command on ``target_id`` is recorded (an order never changes journal)."""
    return TREASURY if kind == PROMOTER else books.order_ledger(target_id).store.name


def _command(request: Request[Principal, Any, Any], service: Service, body: bytes, kind: str, target_id: str,
             command: Command) -> Response:
    """Run ``command`` once per Idempotency-Key; answer with its record."""
    key = request.headers.get("idempotency-key")
    if not key or len(key) > 200:
        raise ClientException("an Idempotency-Key header (1-200 characters) is required")
    fingerprint = request.method.encode() + b" " + request.url.path.encode() + b"\n" + body

    def execute(also: Also) -> int:
        with service.write_lock:
            _, position, _ = command(Books(service.store), also)
        return position

    def render(claim: Claim) -> tuple[int, bytes]:
        books = Books(service.store)
        journal = _journal_of(books, kind, target_id)
        record = books.record_at(journal, claim.position)
        view = {"command_id": command_id(journal, claim.position), "journal": journal, "position": claim.position,
                "record": msgspec.to_builtins(record)}
        return 201, msgspec.json.encode(view)

    try:
        status, payload = run_once(service.store, key, fingerprint, request.user.name, execute, render)
    except KeyConflict:
        raise HTTPException(status_code=409, detail="Idempotency-Key already used with another request") from None
    except CommandError as exc:
        raise _status(exc) from None
    metrics.HOLD_COMMANDS.labels(request.url.path.rsplit("/", 1)[-1]).inc()
    return Response(payload, status_code=status, media_type=MediaType.JSON)


@post("/v1/holds", guards=[WRITE], responses=ERRORS)
@threaded
def create_hold(request: Request[Principal, Any, Any], service: Service, body: bytes) -> Response:
    payload: HoldRequest = _decode(body, HoldRequest)
    _checked(payload.kind, payload.id, payload.reason, request.user.name)
    return _command(request, service, body, payload.kind, payload.id,
                    lambda books, also: books.hold(payload.kind, payload.id, payload.reason, request.user.name, also))


@post("/v1/releases", guards=[WRITE], responses=ERRORS)
@threaded
def create_release(request: Request[Principal, Any, Any], service: Service, body: bytes) -> Response:
    payload: HoldRequest = _decode(body, HoldRequest)
    _checked(payload.kind, payload.id, payload.reason, request.user.name)
    return _command(request, service, body, payload.kind, payload.id,
                    lambda books, also: books.release(payload.kind, payload.id, payload.reason, request.user.name, also))


@post("/v1/rejections", guards=[WRITE], responses=ERRORS)
@threaded
def create_rejection(request: Request[Principal, Any, Any], service: Service, body: bytes) -> Response:
    payload: RejectionRequest = _decode(body, RejectionRequest)
    _checked(ORDER, payload.order_id, payload.reason, request.user.name)
    return _command(request, service, body, ORDER, payload.order_id,
                    lambda books, also: books.reject(payload.order_id, payload.reason, request.user.name, also))


@get("/v1/holds", guards=[READ], responses=ERRORS)
@threaded
def list_holds(service: Service) -> Response:
    return Response(msgspec.json.encode(Books(service.store).holds_in_force()), media_type=MediaType.JSON)


# ------------------------------------------------------------------ the page
def form_token(session_token: str) -> str:
    """The token the holds page's forms carry: derived from the session
    cookie (HttpOnly, SameSite=Strict), so no other site can forge it."""
    return hmac.new(session_token.encode(), b"commission-ledger holds form", hashlib.sha256).hexdigest()


@get("/holds", guards=[READ], include_in_schema=False)
@threaded
def holds_page(request: Request[Principal, Any, Any], service: Service, done: Union[str, None] = None) -> Response:
    session = request.cookies.get(SESSION_COOKIE) or ""
    return _page(request, "holds.html", title="Holds", holds=Books(service.store).holds_in_force(),
                 can_write=request.user.role == FINANCE, form=form_token(session) if session else "", done=done)


@post("/holds", guards=[WRITE], include_in_schema=False)
@threaded
def holds_form(request: Request[Principal, Any, Any], service: Service,
               data: dict[str, str] = Body(media_type=RequestEncodingType.URL_ENCODED)) -> Response:
    """One form post: hold, release or reject. Answers with the page again."""
    data = data or {}
    session = request.cookies.get(SESSION_COOKIE) or ""
    if not session or not hmac.compare_digest(data.get("form", ""), form_token(session)) or not same_origin(request):
        raise PermissionDeniedException("this form was not posted from the holds page")
    action, kind, target_id, reason = (data.get(k, "") for k in ("action", "kind", "id", "reason"))
    _checked(kind, target_id, reason, request.user.name)
    books = Books(service.store)
    try:
        with service.write_lock:
            if action == "hold":
                journal, position, _ = books.hold(kind, target_id, reason, request.user.name)
            elif action == "release":
                journal, position, _ = books.release(kind, target_id, reason, request.user.name)
            elif action == "reject" and kind == ORDER:
                journal, position, _ = books.reject(target_id, reason, request.user.name)
            else:
                raise ClientException("action must be hold, release or reject (orders only)")
    except CommandError as exc:
        raise _status(exc) from None
    return Redirect(f"/holds?done={command_id(journal, position)}", status_code=303)


def metrics_text(books: Books) -> str:
    """SPEC §16 figures in the Prometheus text format (gauges of the holds in force)."""
    figures = hold_figures(books)
    lines = ["# HELP ledger_held_orders Orders with a hold in force, by reason (hold, self_referral, amount_over)",
             "# TYPE ledger_held_orders gauge"]
    lines += [f'ledger_held_orders{{reason="{r}"}} {n}' for r, n in sorted(figures["orders"].items())]
    lines += ["# HELP ledger_held_pending_minor Pending commission held back, by reason and currency (minor units)",
              "# TYPE ledger_held_pending_minor gauge"]
    lines += [f'ledger_held_pending_minor{{reason="{r}",currency="{c}"}} {n}' for (r, c), n in sorted(figures["amounts"].items())]
    lines += ["# HELP ledger_held_promoters Promoters with a hold in force", "# TYPE ledger_held_promoters gauge",
              f"ledger_held_promoters {figures['promoters']}",
              "# HELP ledger_oldest_hold_age_records Records written to a journal since its oldest hold in force",
              "# TYPE ledger_oldest_hold_age_records gauge", f"ledger_oldest_hold_age_records {figures['oldest_records']}"]
    if figures["oldest_order_us"] is not None:
        lines += ["# HELP ledger_oldest_held_order_timestamp_seconds Event time of the oldest held order",
                  "# TYPE ledger_oldest_held_order_timestamp_seconds gauge",
                  f"ledger_oldest_held_order_timestamp_seconds {figures['oldest_order_us'] / 1e6:.6f}"]
    return "\n".join(lines) + "\n"


handlers = [create_hold, create_release, create_rejection, list_holds, holds_page, holds_form]
