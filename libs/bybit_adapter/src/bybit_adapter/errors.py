"""Errors raised by the Bybit adapter.

Tree::

    BybitError
    ├── FrameRejected            a WebSocket frame that cannot be turned into events
    ├── BybitAuthError           private WebSocket auth refused (wrong key, expired signature)
    └── BybitRestError           a REST call that did not succeed
        ├── BybitApiError        the server answered with retCode != 0
        ├── BybitHttpError       the server answered with a non-200 HTTP status
        └── BybitTransportError  no answer: connection error or timeout
"""

from __future__ import annotations

import re

# Bybit echoes what it signed on a bad signature (retCode 10004):
# "error sign! origin_string[<timestamp><API KEY><recv_window><query>]". The key must
# never reach a log line, an exception message or the database.
_ORIGIN_STRING = re.compile(r"origin_string\[[^\]]*\]?")


def redact_server_text(text: str) -> str:
    """Bybit's message with anything it echoed of our request removed."""
    return _ORIGIN_STRING.sub("origin_string[<redacted>]", text)


class BybitError(Exception):
    """Root of every error this package raises."""


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class FrameRejected(BybitError):
    """A frame could not be normalized; ``reason`` says why in one line.

    A reason quotes the frame's own text (a symbol, a field), which may hold line breaks
    or other control characters: they are escaped, so a log line stays one line.
    """

    def __init__(self, reason: str) -> None:
        reason = _CONTROL_CHARACTERS.sub(lambda m: repr(m.group())[1:-1], reason)
        super().__init__(reason)
        self.reason = reason


class BybitAuthError(BybitError):
    """The private stream refused our credentials.

    ``kind`` is ``"expired"`` when the signature's expiry was judged in the past
    (usually clock skew), ``"invalid_key"`` otherwise.
    """

    def __init__(self, kind: str, message: str) -> None:
        message = redact_server_text(message)
        super().__init__(f"private auth failed ({kind}): {message}")
        self.kind = kind
        self.server_message = message


class BybitRestError(BybitError):
    """A REST call failed after its retries."""


class BybitApiError(BybitRestError):
    """``retCode != 0`` in an otherwise well-formed reply."""

    def __init__(self, path: str, ret_code: int, ret_msg: str) -> None:
        ret_msg = redact_server_text(ret_msg)
        super().__init__(f"{path}: retCode {ret_code} ({ret_msg})")
        self.path = path
        self.ret_code = ret_code
        self.ret_msg = ret_msg


class BybitHttpError(BybitRestError):
    """A non-200 HTTP status."""

    def __init__(self, path: str, status: int, body: str) -> None:
        super().__init__(f"{path}: HTTP {status} {redact_server_text(body[:200])}")
        self.path = path
        self.status = status


class BybitTransportError(BybitRestError):
    """No usable answer: connection refused, reset, or timed out."""
