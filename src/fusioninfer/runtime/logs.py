"""Structured logging: ``json`` (one object per line, for machines) or ``console`` (for people).

Why contextvars: a reconcile runs as one asyncio task, and every log line it emits (also from
helpers deep inside, which know nothing about the object) should say *which* object it was about.
`log_context(namespace=..., name=..., controller=..., reconcileID=...)` sets the fields for the
current task (and tasks it creates, which copy the context); a log-record factory (and, as a
fallback, `ContextFilter` on our handler) copies them onto every `LogRecord` as one dict
attribute, ``record.fi_context``, so any handler, ours or pytest's caplog, can see them.

Why one dict attribute and not one attribute per field: `LogRecord.name` is already the logger's
name, and `extra={"namespace": ...}` would raise KeyError if the factory had set the same
attribute. The formatters flatten ``fi_context`` into the output (``name`` there is the object's
name; the logger is under ``logger``).

Extra structured fields can also be passed per call: ``log.info("applied", extra={"kind": k})``.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any, Literal, TextIO

CONTEXT_FIELDS: tuple[str, ...] = ("controller", "namespace", "name", "reconcileID")

# The default is never mutated (log_context always sets a new dict), so sharing it is safe.
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "fusioninfer_log_context",
    default={},  # noqa: B039
)

# Attributes every LogRecord has; anything else on a record came from `extra=` or our filter.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys() | {"message", "asctime", "taskName"}
)


def current_context() -> dict[str, Any]:
    """The structured fields set for the running task (a copy)."""
    return dict(_context.get())


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add `fields` to every record logged inside the block (nested blocks merge and override)."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


CONTEXT_ATTR = "fi_context"


def record_context(record: logging.LogRecord) -> dict[str, Any]:
    """The structured context captured when `record` was created ({} if none)."""
    ctx = getattr(record, CONTEXT_ATTR, None)
    return ctx if isinstance(ctx, dict) else {}


class ContextFilter(logging.Filter):
    """Copies the contextvar fields onto records made before the factory was installed."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, CONTEXT_ATTR):
            setattr(record, CONTEXT_ATTR, _context.get())
        return True


_factory_installed = False


def install_record_factory() -> None:
    """Make *every* LogRecord carry the context fields, whichever handler sees it (caplog too).

    Idempotent. Wraps the current factory instead of replacing it, so other libraries' factories
    keep working.
    """
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        setattr(record, CONTEXT_ATTR, _context.get())
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    out = dict(record_context(record))
    out.update(
        (k, v)
        for k, v in vars(record).items()
        if k not in _STANDARD_ATTRS and k != CONTEXT_ATTR and not k.startswith("_")
    )
    return out


class JsonFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "logger": ..., "msg": ..., <context>, <extra>, "error": ...}``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _dt.datetime.fromtimestamp(record.created, tz=_dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_extra_fields(record))
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


class ConsoleFormatter(logging.Formatter):
    """``12:00:00.123 INFO  logger  message  namespace=ns name=x``."""

    def format(self, record: logging.LogRecord) -> str:
        ts = _dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        fields = " ".join(f"{k}={v}" for k, v in _extra_fields(record).items())
        line = f"{ts} {record.levelname:<5} {record.name}  {record.getMessage()}"
        if fields:
            line += f"  {fields}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(
    fmt: Literal["json", "console"] = "console",
    level: int | str = logging.INFO,
    stream: TextIO | None = None,
    *,
    logger: logging.Logger | None = None,
) -> logging.Handler:
    """Install one handler with our formatter and context filter on `logger` (default: root).

    Replaces handlers previously installed by this function (so calling it twice is safe) and
    returns the handler. Noisy HTTP client loggers are capped at WARNING.
    """
    if fmt not in ("json", "console"):
        raise ValueError(f"unknown log format {fmt!r} (json or console)")
    target = logger if logger is not None else logging.getLogger()
    for h in list(target.handlers):
        if getattr(h, "_fusioninfer", False):
            target.removeHandler(h)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    handler.addFilter(ContextFilter())
    handler._fusioninfer = True  # type: ignore[attr-defined]
    install_record_factory()
    target.addHandler(handler)
    target.setLevel(level.upper() if isinstance(level, str) else level)
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler
