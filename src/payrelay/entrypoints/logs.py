"""The one log configuration: every line structured, JSON in production, readable on a TTY.

Services and adapters keep to the standard library (`logging.getLogger(__name__)`, ids in
`extra={"order_id": ..., "payment_id": ..., "correlation_id": ...}`): structlog is a vendor
library they may not import. So structlog is wired in here, at the root handler, through
its `ProcessorFormatter`: each stdlib record becomes an event dict (level, logger, UTC
timestamp, the record's extras as fields) and is rendered as one JSON object per line, or
as aligned `key=value` text for a person at a terminal.

`PAYRELAY_LOG_FORMAT` (`json` or `console`) chooses; unset, a TTY gets console and anything
else (a file, a pipe, a supervisor) JSON. `PAYRELAY_LOG_LEVEL` (`debug`, `info`, ...)
overrides the level each command asks for.
"""

from __future__ import annotations

import logging
import os
import sys
from enum import StrEnum
from typing import TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["LogFormat", "configure_logging"]

_HANDLER_NAME = "payrelay"
_CHATTY = ("httpx", "httpcore", "aiormq", "aio_pika", "asyncio", "alembic")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a line is written (a test runner swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # under the handler's lock: `handle` holds it
        super().emit(record)


class LogFormat(StrEnum):
    JSON = "json"
    """One JSON object per line: what production log shippers read."""
    CONSOLE = "console"
    """Aligned, coloured `key=value` text: for a person at a terminal."""


def configure_logging(
    level: int | str = logging.INFO, *, fmt: LogFormat | None = None,
    stream: TextIO | None = None,
) -> LogFormat:
    """Route every stdlib logger through structlog at `level` (`logging.INFO` or "info");
    returns the format chosen.

    Calling it again replaces the handler it installed before (a test may; a command calls
    it once); handlers someone else put on the root logger are left alone.
    """
    fmt = fmt or _format_from_environment(stream or sys.stderr)
    level = _level_from_environment(_level(level))
    handler = logging.StreamHandler(stream) if stream else _StderrHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_pre_chain(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *_rendering(fmt)],
    ))
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _CHATTY:  # a line per HTTP request or AMQP frame is not news
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    # structlog's own loggers (none in services; an entrypoint may) take the same road.
    structlog.configure(
        processors=[*_pre_chain(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return fmt


def _pre_chain() -> list[Processor]:
    return [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _drop_message,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _rendering(fmt: LogFormat) -> list[Processor]:
    if fmt is LogFormat.JSON:
        return [structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(default=str, sort_keys=False)]
    return [_drop_empty, structlog.dev.ConsoleRenderer(colors=False)]


def _drop_message(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """A record formatted once already carries `message`: the same text as `event`."""
    event.pop("message", None)
    return event


def _drop_empty(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """On a terminal, `order_id=None` is noise; JSON keeps it (a field always present)."""
    return {key: value for key, value in event.items() if value is not None}


def _format_from_environment(stream: TextIO) -> LogFormat:
    chosen = os.environ.get("PAYRELAY_LOG_FORMAT", "").strip().lower()
    if chosen:
        try:
            return LogFormat(chosen)
        except ValueError:
            raise ValueError("PAYRELAY_LOG_FORMAT must be json or console") from None
    isatty = getattr(stream, "isatty", None)
    return LogFormat.CONSOLE if isatty is not None and isatty() else LogFormat.JSON


def _level_from_environment(default: int) -> int:
    chosen = os.environ.get("PAYRELAY_LOG_LEVEL", "").strip()
    return _level(chosen, "PAYRELAY_LOG_LEVEL") if chosen else default


def _level(level: int | str, name: str = "level") -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"{name} must be debug, info, warning, error or critical")
    return number
