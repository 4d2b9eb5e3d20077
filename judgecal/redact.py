"""Secrets never enter anything: redaction of known secrets and of credential-shaped text.

Whatever an endpoint sends back is stored, hashed into the audit chain and rendered in
reports, and an endpoint may echo what it was sent: a gateway that puts the
``Authorization`` header into its error text, a model id that repeats the key, a reply that
quotes a webhook URL. A :class:`Redactor` knows the secrets of one job (the judge's API key,
the webhook URL's token, the HMAC key, a password in a URL) and replaces each occurrence
with ``[redacted]``; it also replaces text that looks like a credential whoever it belongs
to (``sk-…`` keys, ``Bearer …`` tokens, Slack/GitHub/AWS tokens, Slack webhook paths).

:func:`install_log_filter` puts the same redaction on the loggers of the HTTP libraries
(httpx logs every request URL at INFO, webhook tokens included) and on judgecal's own.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "Redactor",
    "install_log_filter",
    "safe_url",
    "stored_url",
    "url_secrets",
]

REDACTED = "[redacted]"

_MIN_SECRET = 8
"""Shorter values are not treated as secrets (``unused``, ``none``, ``test`` would match
everywhere)."""

_CREDENTIAL_SHAPES = re.compile(
    r"""
    \bsk-(?:proj-|ant-|svcacct-)?[A-Za-z0-9_\-]{16,}      # OpenAI / Anthropic style keys
    | \bBearer\s+[A-Za-z0-9._~+/\-]{12,}=*                 # bearer tokens
    | \bxox[abprs]-[A-Za-z0-9\-]{10,}                      # Slack tokens
    | \bgh[pousr]_[A-Za-z0-9]{20,}                         # GitHub tokens
    | \bAKIA[0-9A-Z]{16}\b                                 # AWS access key ids
    | hooks\.slack\.com/services/[A-Za-z0-9/_\-]+          # Slack webhook paths
    """,
    re.VERBOSE,
)


def url_secrets(url: str | None, *, whole: bool = True) -> list[str]:
    """The parts of ``url`` that may be secret: its password, and with ``whole`` the URL
    itself, its token-like path segments and query values (a Slack or Discord webhook URL
    *is* its token)."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url] if whole else []
    out = []
    if parts.password:
        out.append(parts.password)
    if whole:
        out.append(url)
        out += [seg for seg in parts.path.split("/") if len(seg) >= _MIN_SECRET]
        out += [value for _, value in parse_qsl(parts.query) if len(value) >= _MIN_SECRET]
    return out


def safe_url(url: str) -> str:
    """``url`` as it may be shown: without user, password or query string."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else REDACTED


def stored_url(url: str) -> str:
    """``url`` as it may be stored: a password and query values replaced by ``[redacted]``,
    everything else kept (the host and path say which endpoint a run used)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if parts.password:
        netloc = netloc.replace(f":{parts.password}@", f":{REDACTED}@", 1)
    query = "&".join(f"{k}={REDACTED}" for k, _ in parse_qsl(parts.query)) if parts.query \
        else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class Redactor:
    """Replaces the given secrets, and anything shaped like a credential, with ``[redacted]``.

    >>> r = Redactor(["abcdefgh12345678"])
    >>> r("model abcdefgh12345678 says sk-AAAAAAAAAAAAAAAAAAAAAAAA")
    'model [redacted] says [redacted]'
    """

    def __init__(self, secrets: Iterable[str | None] = ()):
        found = {s for s in secrets if s and len(s) >= _MIN_SECRET}
        # Longest first, so a URL is replaced whole before its token is.
        self.secrets: tuple[str, ...] = tuple(sorted(found, key=len, reverse=True))
        self._known = (
            re.compile("|".join(re.escape(s) for s in self.secrets)) if self.secrets else None
        )

    def __call__(self, text: str | None) -> str | None:
        if not text:
            return text
        if self._known is not None:
            text = self._known.sub(REDACTED, text)
        return _CREDENTIAL_SHAPES.sub(REDACTED, text)

    def text(self, text: str) -> str:
        """:meth:`__call__` for a value known to be text."""
        return self(text) or text

    def value(self, obj: Any) -> Any:
        """``obj`` with every string inside it (dict keys and values, list items) redacted."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.value(k): self.value(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.value(v) for v in obj]
        return obj

    def merged(self, other: Redactor) -> Redactor:
        return Redactor(self.secrets + other.secrets)


class _RedactingFilter(logging.Filter):
    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logger's problem, not a leak
            return True
        record.msg = self.redactor.text(message)
        record.args = ()
        return True


# A logger's filter sees only records logged to that very logger, so children are named.
_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "openai",
    "openai._base_client",
    "judgecal",
    "judgecal.http",
    "judgecal.notify",
    "urllib3",
)
_installed: dict[str, _RedactingFilter] = {}


def install_log_filter(redactor: Redactor) -> None:
    """Redact ``redactor``'s secrets from every record of the HTTP libraries' loggers and of
    judgecal's, at any level. Secrets of earlier calls stay redacted too (a run, then its
    webhook delivery)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        old = _installed.pop(name, None)
        combined = redactor
        if old is not None:
            logger.removeFilter(old)
            combined = old.redactor.merged(redactor)
        new = _RedactingFilter(combined)
        logger.addFilter(new)
        _installed[name] = new
