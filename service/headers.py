"""Response headers every answer carries, and the origin check of the login.

- ``Content-Security-Policy``: scripts, styles and images from this origin only
  (the pages' CSS and sorter are ``/assets/…``; nothing inline, no CDN), no
  plugins, no framing (``frame-ancestors 'none'``, and ``X-Frame-Options: DENY``
  for older browsers), forms post only here;
- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin``;
- ``Cache-Control: no-store`` unless the route set its own (only the static
  assets do): pages, JSON and CSVs carry money and must not stay in a cache;
- ``Strict-Transport-Security`` when served behind TLS (``serve --behind-tls``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_ALWAYS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
_HSTS = (b"strict-transport-security", b"max-age=31536000")
_NO_STORE = (b"cache-control", b"no-store")


def security_headers(behind_tls: bool) -> Any:
    """An ASGI middleware (Litestar's ``middleware=[…]`` factory form)."""
    extra = _ALWAYS + ([_HSTS] if behind_tls else [])

    def middleware(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = list(message.get("headers") or [])
                    names = {name.lower() for name, _ in headers}
                    headers += [h for h in extra if h[0] not in names]
                    if b"cache-control" not in names:
                        headers.append(_NO_STORE)
                    message = {**message, "headers": headers}
                await send(message)

            await app(scope, receive, send_with_headers)

        return wrapped

    return middleware


def is_https(connection: ASGIConnection[Any, Any, Any, Any], behind_tls: bool) -> bool:
    """Served over TLS: ``--behind-tls`` (a proxy terminates TLS), or the
    request's scheme is https (uvicorn with TLS, or uvicorn's proxy headers:
    ``X-Forwarded-Proto: https`` from an address in ``--forwarded-allow-ips``,
    127.0.0.1 by default)."""
    return behind_tls or connection.scope.get("scheme") == "https"


def same_origin(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """A state-changing form post (login, logout) came from our own pages: its
    ``Origin`` (or, without one, its ``Referer``) names this host. Browsers send
    Origin on every cross-site POST; a request with neither is not from a
    browser page, and carries no ambient credential to abuse."""
    origin = connection.headers.get("origin") or connection.headers.get("referer")
    if origin is None:
        return True
    host = connection.headers.get("host", "")
    parts = urlsplit(origin)
    return origin != "null" and bool(host) and parts.netloc == host and parts.scheme in ("http", "https")
