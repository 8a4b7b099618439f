"""The error body every API route answers with, and the error statuses the
OpenAPI document lists for each route (shared by ``service.api`` and
``service.holds``)."""

from __future__ import annotations

import msgspec
from litestar.openapi.datastructures import ResponseSpec


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every error's body: one line, and for a store or internal error the
    reference of the log line holding its detail."""

    error: str
    ref: str | None = None


_ERROR_TEXT = {400: "Bad request: one line saying what", 401: "No known token", 403: "The token's role may not do this",
               404: "No such thing", 409: "Idempotency-Key already used with another request",
               413: "Request body too large", 500: "Internal error (see the log line of `ref`)",
               503: "The store is unavailable (see the log line of `ref`)"}
ERRORS = {status: ResponseSpec(data_container=ErrorBody, description=text) for status, text in _ERROR_TEXT.items()}
