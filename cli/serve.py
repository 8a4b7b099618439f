"""``serve``: the HTTP API and payout pages (uvicorn)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from cli.errors import UsageError
from cli.options import Command, store_url


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--tokens", default=None, metavar="FILE", help="tokens TOML (env LEDGER_TOKENS)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (each opens the store; reads come from the read-model tables)")
    parser.add_argument("--behind-tls", action="store_true",
                        help="TLS ends at a proxy in front: session cookies are Secure and HSTS is sent "
                             "(without it, Secure follows the request's scheme, e.g. X-Forwarded-Proto from 127.0.0.1)")


def run(args: argparse.Namespace) -> int:
    # Lazy, and the only lazy imports of the command line: Litestar (with its
    # OpenAPI models) and uvicorn take about 0.35 s to import, which every other
    # command would pay at start-up for nothing.
    import uvicorn

    from service.api import create_app
    from service.auth import TokensError, load_tokens

    path = args.tokens or os.environ.get("LEDGER_TOKENS")
    if not path:
        raise UsageError("serve needs --tokens FILE (or LEDGER_TOKENS)")
    try:
        tokens = load_tokens(path)
    except TokensError as exc:
        raise UsageError(str(exc)) from None
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    # uvicorn's access log shows method, path and status; never headers, so no tokens.
    if args.workers > 1:
        os.environ["LEDGER_SERVE_STORE"] = store_url(args)
        os.environ["LEDGER_SERVE_TOKENS"] = os.path.abspath(path)
        os.environ["LEDGER_SERVE_BEHIND_TLS"] = "1" if args.behind_tls else "0"
        uvicorn.run("service.api:app_from_env", factory=True, workers=args.workers, host=args.host, port=args.port,
                    log_level="warning", server_header=False)
        return 0
    app = create_app(store_url(args), tokens, behind_tls=args.behind_tls)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", server_header=False)
    return 0


SERVE = Command(options, run)
