"""The one error type of Thread IR construction and verification."""

from __future__ import annotations

__all__ = ["ThreadIRError"]


class ThreadIRError(ValueError):
    """A malformed Thread IR program: the message names the instruction (and, for arch errors,
    the target)."""
