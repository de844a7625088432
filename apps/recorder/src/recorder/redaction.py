"""One redaction layer for every secret the process knows.

``SECRETS`` (a process-wide ``Redactor``) is told each secret as soon as the configuration
is read: the API key and secret, the database password, whatever a config file of the user's
holds inline. ``redact`` then replaces, in any text:

* every registered secret, by ``***``;
* the password of any URL (``scheme://user:PASSWORD@host``), by ``***``;
* whatever Bybit echoed of a signed request (``origin_string[...]``, retCode 10004), by
  ``origin_string[<redacted>]`` (as ``bybit_adapter.errors.redact_server_text`` does at the
  source; here within one line, so that a multi-line text keeps its other lines).

It is applied to every log line (``RedactingFilter``, installed on every handler by
``install_log_redaction``: the console, Hydra's job log file, the multirun launcher's log),
to every error text the recorder stores (``runs.error``), to every file it writes
(``session.json``, ``health.json``) and to the files Hydra saved (``scrub_files``).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, unquote

__all__ = [
    "MASK",
    "SECRETS",
    "RedactingFilter",
    "Redactor",
    "install_log_redaction",
    "redact",
    "scrub_files",
]

MASK = "***"
#: shorter secrets are not searched for as bare text (they would mangle every line); they are
#: still hidden wherever they stand as a URL's password
MIN_BARE_SECRET = 4
_ORIGIN_STRING = re.compile(r"origin_string\[[^\]\n]*\]?")
# scheme://user:password@  ->  scheme://user:***@   (the user part may be empty), also as Hydra
# escapes it in a multirun's overrides (``postgresql\://user\:password@``). A password that is
# an OmegaConf interpolation (``${oc.env:RECORDER_DB_PASSWORD}``) is not a secret.
_URL_PASSWORD = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*\\?://[^\s:/@'\"\\]*\\?:)(?!\$\\?\{)[^\s@/'\"]+@"
)


class Redactor:
    """The secrets of this process, and the one function that hides them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def add(self, *secrets: str | None) -> None:
        """Remember secrets (their URL-quoted and unquoted forms too); empty ones are ignored."""
        found = set(self._secrets)
        for secret in secrets:
            if not secret:
                continue
            for form in {secret, unquote(secret), quote(secret, safe="")}:
                if len(form) >= MIN_BARE_SECRET:
                    found.add(form)
        with self._lock:
            # Longest first: a secret that contains another is replaced whole.
            self._secrets = tuple(sorted(found, key=len, reverse=True))

    def clear(self) -> None:
        with self._lock:
            self._secrets = ()

    @property
    def known(self) -> int:
        return len(self._secrets)

    def redact(self, text: str) -> str:
        text = _ORIGIN_STRING.sub("origin_string[<redacted>]", text)
        text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
        return self.redact_known(text)

    def redact_known(self, text: str) -> str:
        """Only the registered secrets (no patterns): for texts such as source diffs."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def contains_secret(self, text: str) -> bool:
        return self.redact(text) != text


#: the process's secrets
SECRETS = Redactor()


def redact(text: str) -> str:
    """``text`` without any secret this process knows."""
    return SECRETS.redact(text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and traceback) through ``SECRETS`` before any handler
    formats it. Always lets the record through."""

    def __init__(self, redactor: Redactor = SECRETS) -> None:
        super().__init__("recorder.redaction")
        self.redactor = redactor
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: show what there is, redacted
            message = f"{record.msg!r} % {record.args!r}"
        clean = self.redactor.redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True


def _handlers() -> Iterable[logging.Handler]:
    yield from logging.getLogger().handlers
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            yield from logger.handlers
    if logging.lastResort is not None:
        yield logging.lastResort


def install_log_redaction(redactor: Redactor = SECRETS) -> int:
    """Put a ``RedactingFilter`` on every handler that exists now (idempotent).

    Call it after every (re)configuration of logging: Hydra replaces the handlers when a job
    starts. Returns the number of handlers that got the filter just now.
    """
    added = 0
    for handler in _handlers():
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(redactor))
            added += 1
    return added


def scrub_files(paths: Iterable[Path], redactor: Redactor = SECRETS) -> list[Path]:
    """Rewrite, redacted, each text file that holds a secret; returns the files rewritten."""
    rewritten = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        clean = redactor.redact(text)
        if clean != text:
            temporary = path.with_name(f".{path.name}.scrub")
            temporary.write_text(clean, encoding="utf-8")
            temporary.replace(path)
            rewritten.append(path)
    return rewritten
