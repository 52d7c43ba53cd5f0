"""Logging setup shared by every process: one line per record, key=value fields in the message.

Credentials in URLs (``postgresql://pod:secret@db``, a ComfyUI behind a proxy at
``https://user:secret@gpu``) are redacted here: :func:`redact_urls` for any text shown (a log
line, an error, a doctor check), :func:`split_credentials` for a client that sends them as a
header and names the server without them. Every record a service logs goes through
:func:`redact_urls` as well (:class:`RedactingFormatter`), tracebacks included.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import re
import sys
from urllib.parse import unquote, urlsplit, urlunsplit

# scheme://userinfo@ : the userinfo ends at the first "@" before any "/", "?", "#" or space.
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@?#]+)@")
REDACTED = "***"


def _mask(match: re.Match[str]) -> str:
    user, colon, _ = match["userinfo"].partition(":")
    # user:password keeps the user (it says which account); a lone userinfo is a token.
    shown = f"{user}:{REDACTED}" if colon else REDACTED
    return f"{match['scheme']}{shown}@"


def redact_urls(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``."""
    return _USERINFO.sub(_mask, text) if "@" in text else text


def redact_url(url: str) -> str:
    """One URL, fit for a banner, a log line or an answer (its password replaced)."""
    return redact_urls(url)


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without its userinfo, and the (user, password) it held (percent-decoded), if
    any: a client sends them as a header and names the server by the URL alone."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.netloc.rpartition("@")[2]
    bare = urlunsplit(parts._replace(netloc=host))
    return bare, (unquote(parts.username or ""), unquote(parts.password or ""))


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then redacts URL credentials from the whole line (the message, its
    arguments and any traceback): a URL logged by a library is covered too."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_urls(super().format(record))


def setup_logging(service: str) -> None:
    """Configure the root logger once for a service process (level from ``LOG_LEVEL``)."""
    # A crash inside a C extension (librdkafka) then leaves a Python stack in the log.
    faulthandler.enable()
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    fmt = f"%(asctime)s %(levelname)s service={service} %(name)s %(message)s"
    logging.basicConfig(level=level, stream=sys.stderr, format=fmt)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(RedactingFormatter(fmt))
    # Client libraries are chatty at INFO; their warnings still show.
    for noisy in ("httpx", "httpcore", "aiokafka", "kafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
