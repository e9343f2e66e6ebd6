"""Logs an operator can search and nobody can mine: JSON lines (time, level, logger, message, and
the request, job and user they belong to), with verification codes, tokens, 身份证号 and phone
numbers taken out of every message before it is written, in web and worker processes alike.

``configure(json_lines=True)`` is called by ``docsign serve`` and ``docsign worker``; one-shot
commands keep short text lines for the person at the terminal (redacted the same way). The request
id comes from the HTTP middleware (``X-Request-ID``), the job id from the job runners, through the
context variables below.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
from typing import Any

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
job_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("job_id", default=None)
user_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("user_id", default=None)
#: The signed-in user of the request being served, found after the request began (by a dependency
#: that runs in a thread of its own, whose context changes never reach the request's): a cell the
#: request's context holds, written through :func:`note_user`.
_request_user: contextvars.ContextVar[list[int | None] | None] = contextvars.ContextVar("request_user", default=None)


def begin_request(rid: str) -> tuple[contextvars.Token[str | None], contextvars.Token[list[int | None] | None]]:
    """A request starts: its id, and an empty cell for its user (:func:`note_user`)."""
    return request_id.set(rid), _request_user.set([None])


def end_request(tokens: tuple[contextvars.Token[str | None], contextvars.Token[list[int | None] | None]]) -> None:
    request_id.reset(tokens[0])
    _request_user.reset(tokens[1])


def note_user(uid: int) -> None:
    """The request being served is by this user: every line it writes from now on says so."""
    cell = _request_user.get()
    if cell is not None:
        cell[0] = uid
    else:
        user_id.set(uid)


def _current_user() -> int | None:
    cell = _request_user.get()
    if cell is not None and cell[0] is not None:
        return cell[0]
    return user_id.get()


#: What never reaches a log: a code in a verification address (the code opens a child's notice),
#: a bearer or API token, an 18-character 身份证号, a mainland mobile number.
_REDACTIONS = (
    (re.compile(r"(/v/)(?!check\b)[A-Za-z0-9-]{4,64}"), r"\1{code}"),
    # a code anywhere else, as printed (7 groups of 4) or stored (28 characters of its alphabet)
    (re.compile(r"(?<![0-9A-Z])[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){6}(?![0-9A-Z])"), "[验证码]"),
    (re.compile(r"(?<![0-9A-Za-z])[0-9A-HJKMNP-TV-Z]{28}(?![0-9A-Za-z])"), "[验证码]"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1[已隐去]"),
    (re.compile(r"(?i)\b(token|password|passphrase|secret)=([^&\s]+)"), r"\1=[已隐去]"),
    (
        re.compile(
            r"(?<![0-9A-Za-z])[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?![0-9A-Za-z])"
        ),
        "[身份证号]",
    ),
    (re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)"), "[手机号]"),
)


def redact(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class Redact(logging.Filter):
    """Rewrites each record's message with the personal data and secrets taken out."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the template, not the arguments
            message = str(record.msg)
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in (("request_id", request_id.get()), ("job_id", job_id.get()), ("user_id", _current_user())):
            if value is not None:
                line[key] = value
        if record.exc_text:
            line["error"] = record.exc_text
        elif record.exc_info:
            line["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


def configure(*, json_lines: bool, level: int = logging.INFO) -> None:
    """The root logger's one handler (stderr): JSON lines or short text, always redacted; uvicorn's
    own loggers go through it."""
    handler = logging.StreamHandler()
    handler.addFilter(Redact())
    handler.setFormatter(JsonLines() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # pyHanko logs expected findings (a tampered file, no online revocation fetching) as warnings
    # and tracebacks; the verification report says the same thing in words.
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
    logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
