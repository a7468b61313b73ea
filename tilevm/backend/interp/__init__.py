"""The reference interpreter of Tile IR (numpy): the meaning of a program (DESIGN §1, §3)."""

from tilevm.backend.interp.machine import InterpreterError, launch_grid, run

__all__ = ["InterpreterError", "launch_grid", "run"]
