"""The one exception hierarchy. Every error carries a message and machine-readable context."""

from __future__ import annotations

from typing import Any


class KamiyoError(Exception):
    """Base of every error Kamiyo raises on purpose. `retryable` tells callers whether trying again may help."""

    retryable = False

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        return self.message


class InputError(KamiyoError, ValueError):
    """A user mistake in what was handed to us: a path, a hex string, a JSON line. Shown as one line."""


class BytecodeError(InputError):
    """Bytecode that cannot be read at all (not hex, odd length). Odd *contents* never raise."""
