"""Logging, configured once at start: JSON lines on stdout under systemd (journald keeps
them), console rendering on a terminal; stdlib loggers (asyncpg, aiosmtpd, pyftpdlib)
go through the same processors."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from ecosms_gw.config import LogConfig


def configure(settings: LogConfig, stream: TextIO = sys.stdout) -> None:
    as_json = settings.format == "json" or (settings.format == "auto" and not stream.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer())
    structlog.configure(
        # a line below the level is dropped first, before it costs a timestamp
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # it narrates every pg_ctl call
