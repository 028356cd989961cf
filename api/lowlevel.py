"""Responses aiohttp makes by itself, before any route or middleware runs: a request line or header over
the parser's limit (8 KB: ``max_line_size``/``max_field_size``), a malformed request, an exception that
escaped every middleware. aiohttp renders those as plain text (with a traceback for a 500 in debug mode)
through ``RequestHandler.handle_error``, the one place they all pass; ``install()`` wraps it so they
become the API's JSON error envelope, without versions or traceback, and logs parse errors (hostile
input from the network, not a server fault) in one line at INFO instead of a traceback at ERROR."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web, web_protocol

from .envelope import dumps

SERVER_HEADER = "Switchboard"
_MESSAGES = {
    400: ("bad_request", "The request could not be read: its request line or a header is malformed or longer than "
                         "8 KB."),
    413: ("payload_too_large", "Request body is too large."),
    414: ("uri_too_long", "The URL is too long (at most 8 KB)."),
    431: ("bad_request", "The request headers are too large."),
    500: ("internal_error", "Internal server error."),
}


def envelope_for(status: int) -> web.Response:
    code, message = _MESSAGES.get(status, ("http_error", "The request could not be handled."))
    request_id = str(uuid.uuid4())
    body = {"error": {"code": code, "message": message},
            "meta": {"request_id": request_id, "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")}}
    response = web.Response(status=status, text=dumps(body), content_type="application/json",
                            headers={"Server": SERVER_HEADER, "X-Request-Id": request_id})
    response.force_close()
    return response


class _QuietParseErrors(logging.Filter):
    """A malformed or oversized request is logged in one line, not with a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and any(c.__name__ == "HttpProcessingError" for c in type(exc).__mro__):
            detail = str(getattr(exc, "message", "") or "")[:120]
            record.msg, record.args = f"{record.getMessage()}: {type(exc).__name__}: {detail}", ()
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_FILTER = _QuietParseErrors()


def install() -> None:
    """Idempotent: JSON envelopes for aiohttp's own error responses, quiet parse-error logs."""
    server_log = logging.getLogger("aiohttp.server")
    if _FILTER not in server_log.filters:
        server_log.addFilter(_FILTER)
    original = web_protocol.RequestHandler.handle_error
    if getattr(original, "switchboard_json", False):
        return

    def handle_error(self: Any, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        original(self, request, status, exc, message)  # logs, and raises when a response was already sent
        return envelope_for(status)

    handle_error.switchboard_json = True  # type: ignore[attr-defined]
    web_protocol.RequestHandler.handle_error = handle_error  # type: ignore[method-assign]
