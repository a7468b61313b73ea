"""The reference interpreter of Tile IR (numpy): the meaning of a program (DESIGN §1, §3)."""

from tilevm.backend.interp.machine import InterpreterError, run

__all__ = ["InterpreterError", "run"]
