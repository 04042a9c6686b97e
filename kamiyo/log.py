"""structlog, set up once per process: JSON lines when stderr is not a terminal (journald, pipelines),
readable console lines otherwise. Event names are stable and dotted (`families.built`), context is bound,
and values under secret-looking keys are redacted before anything is written."""

from __future__ import annotations

import logging
import sys

import structlog

_SECRET_KEYS = ("secret", "password", "token", "api_key", "apikey", "authorization")


def _redact(_logger, _method, event: dict) -> dict:
    for key in event:
        if any(word in key.lower() for word in _SECRET_KEYS):
            event[key] = "***"
    return event


class _StderrLogger:
    """Writes each line to whatever sys.stderr is when the line is written: a logger bound to the stream of the
    moment it was configured would keep writing to it after a test harness (or a redirect) closed it."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def configure(json_lines: bool | None = None, level: int = logging.INFO) -> None:
    """Idempotent. `json_lines` None chooses by whether stderr is a terminal."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    renderer = structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_args: _StderrLogger(),
        cache_logger_on_first_use=False,
    )


def get(name: str) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)
