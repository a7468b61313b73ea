"""Errors every layer may raise or catch, so that catching them needs no import of a backend."""

from __future__ import annotations

__all__ = ["KernelExecutionError"]


class KernelExecutionError(RuntimeError):
    """A kernel did something undefined while it ran (an unmasked access outside a tensor, a
    partial-mask warp instruction…): the user's program is at fault, not the compiler. Each
    backend raises a subclass whose message names the instruction and, where known, the line."""
