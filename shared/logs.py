"""Structured logging: JSON lines when not on a terminal, readable console output otherwise.

Standard-library loggers (FastStream's, apprise's) go through the same processors, so every
line of a service has one format. Bind ``report_id`` with :func:`bound_report` and it appears
on every line logged while handling that report.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from shared.settings import Settings

_SHARED_PROCESSORS: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(settings: Settings, service: str) -> None:
    """Route structlog and standard logging to stderr in the configured format."""
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,  # a line below the level costs nothing more
            *_SHARED_PROCESSORS,
            structlog.processors.format_exc_info if use_json else _noop,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED_PROCESSORS,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    logging.getLogger("apprise").setLevel(max(root.level, logging.WARNING))
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


def _noop(_: Any, __: str, event_dict: structlog.typing.EventDict) -> structlog.typing.EventDict:
    return event_dict


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger named like a standard one."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


@contextmanager
def bound_report(report_id: str | None) -> Iterator[None]:
    """Bind ``report_id`` to every log line inside the block."""
    if report_id is None:
        yield
        return
    with structlog.contextvars.bound_contextvars(report_id=report_id):
        yield
