"""The interpreter has a rule for every operation of Tile IR, and none for an operation that does
not exist: an op defined in ``ir/tile/ops.py`` without ``op_<name>`` could be built but not run."""

from __future__ import annotations

from tilevm.backend.interp.machine import _Machine
from tilevm.ir.tile.ops import OPS


def test_every_tile_ir_operation_has_an_interpreter_rule():
    missing = sorted(op for op in OPS if not callable(getattr(_Machine, f"op_{op}", None)))
    assert not missing, f"Tile IR operations without an interpreter rule op_<name>: {missing}"


def test_every_interpreter_rule_is_a_tile_ir_operation():
    rules = {name.removeprefix("op_") for name in dir(_Machine) if name.startswith("op_")}
    assert sorted(rules - set(OPS)) == []
