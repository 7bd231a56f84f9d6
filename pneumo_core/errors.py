"""Typed errors: the only exceptions bad user input may raise."""

from __future__ import annotations


class InputError(ValueError):
    """An input that cannot be scored, with a message written for the person who supplied it.

    ``code`` is a stable machine-readable reason (for tests, CSV output and the app), ``message``
    says what is wrong and what to do.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ModelLoadError(RuntimeError):
    """A model folder that is missing, incomplete or unreadable."""
