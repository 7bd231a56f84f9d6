"""Typed errors: the only exceptions bad user input may raise."""

from __future__ import annotations

from typing import Any


class InputError(ValueError):
    """An input that cannot be scored, with a message written for the person who supplied it.

    ``code`` is a stable machine-readable reason (for tests, CSV output and the app), ``message``
    says what is wrong and what to do.
    """

    read: tuple[float, Any] | None = None
    """What the network made of the image, ``(logit, embedding)``, when it got that far (refused by
    the feature gate): a site check counts such images, since a site's images may be far off and
    still be X-rays."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ModelLoadError(RuntimeError):
    """A model folder that is missing, incomplete or unreadable."""
