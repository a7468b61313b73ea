"""Each DSL builtin is one definition: its public function shows its real signature and docstring,
raises outside a kernel, and has a translation into Tile IR."""

from __future__ import annotations

import ast
import inspect
import pydoc

import numpy as np
import pytest

import tilevm as tv
from tilevm.frontend import dsl
from tilevm.frontend.builtins import BUILTINS, DEFINITIONS, OutsideKernelError, definition_of
from tilevm.frontend.builtins.registry import builtin, translates
from tilevm.ir.tile.ops import OPS

NAMES = sorted(BUILTINS)


def test_the_builtins_are_the_dsl_of_design_5():
    expected = {
        "launch", "block_idx", "grid_dim", "range", "zeros", "full", "arange", "cdiv", "load",
        "store", "shared", "copy_async", "commit", "wait", "sync", "fence", "dot", "cast",
        "bitcast", "view", "convert_layout", "where", "reduce", "sum", "max", "min", "maximum",
        "minimum", "fma", "transpose", "reshape", "broadcast", "atomic", "atomic_add",
        "atomic_max", "atomic_min", "atomic_exch", "workspace", "debug_print", "exp", "exp2",
        "log", "log2", "sqrt", "rsqrt", "sin", "cos", "tanh", "abs", "floor", "ceil", "rint",
        "argmax", "argmin", "cumsum", "cumprod", "cummax", "cummin", "device_assert", "scan",
    }  # fmt: skip
    assert set(BUILTINS) == expected
    assert set(DEFINITIONS) == expected


@pytest.mark.parametrize("name", NAMES)
def test_a_builtin_shows_its_declared_signature_and_docstring(name):
    fn = getattr(tv, name)
    assert fn is BUILTINS[name] is getattr(dsl, name)
    definition = definition_of(fn)
    assert definition is DEFINITIONS[name] and definition.name == name == fn.__name__
    sig = inspect.signature(fn)
    assert sig == definition.signature
    kinds = [p.kind for p in sig.parameters.values()]
    assert inspect.Parameter.VAR_KEYWORD not in kinds, sig  # not the stub's (*args, **kwargs)
    assert str(sig) != "(*args, **kwargs)"
    doc = inspect.getdoc(fn)
    assert doc and len(doc) > 10
    shown = pydoc.render_doc(fn, renderer=pydoc.plaintext)
    assert f"{name}{sig}" in shown
    assert doc.splitlines()[0] in shown


def test_the_signatures_are_the_parameters_users_write():
    def params(fn):
        return [p.name for p in inspect.signature(fn).parameters.values()]

    assert params(tv.load) == ["tensor", "offsets", "shape", "mask", "other", "layout"]
    assert inspect.signature(tv.load).parameters["mask"].default is None
    assert params(tv.store) == ["tensor", "value", "offsets", "mask"]
    assert params(tv.dot) == ["a", "b", "acc", "precision"]
    precision = inspect.signature(tv.dot).parameters["precision"]
    assert precision.kind is inspect.Parameter.KEYWORD_ONLY and precision.default == "ieee"
    assert params(tv.sum) == ["x", "axis", "keepdims", "dtype"]
    assert params(tv.atomic_add) == ["tensor", "value", "offsets", "mask"]
    assert params(tv.exp) == ["x"]
    assert params(tv.debug_print) == ["prefix", "values", "block"]
    block = inspect.signature(tv.debug_print).parameters["block"]
    assert block.kind is inspect.Parameter.KEYWORD_ONLY and block.default is None
    assert "Elementwise sqrt" in tv.sqrt.__doc__
    assert '"max"' in tv.max.__doc__ and "Atomic exchange" in tv.atomic_exch.__doc__


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_has_a_translation(name):
    definition = DEFINITIONS[name]
    assert callable(definition.translate)
    # It is called as translate(tr, node) when it binds the arguments itself, else as
    # translate(tr, node, values, nodes).
    args = (None, None) if not definition.bind else (None, None, {}, {})
    inspect.signature(definition.translate).bind(*args)


def test_every_public_builtin_is_registered():
    public = {name for name, v in vars(tv).items() if hasattr(v, "__tilevm_builtin__")}
    assert public == set(BUILTINS)
    exported = set(tv.__all__) & public
    assert exported == public - {"range", "max", "min", "sum", "abs"}


@pytest.mark.parametrize("name", NAMES)
def test_a_builtin_called_outside_a_kernel_raises_naming_it(name):
    with pytest.raises(OutsideKernelError, match=rf"tilevm\.{name} can only be used inside a "
                                                 r"@tilevm\.kernel function"):
        BUILTINS[name](1, 2)


def test_a_builtin_given_as_a_constant_prints_as_the_dsl_module_names_it():
    # The text form keys the binary cache: the name it prints must not follow the file layout.
    assert tv.exp.__module__ == "tilevm.frontend.dsl"
    assert tv.exp.__qualname__ == "exp"


def test_a_translation_is_attached_once_and_only_to_a_builtin():
    def plain(x):
        """Not a builtin."""

    with pytest.raises(ValueError, match="is not a DSL builtin"):
        translates(plain)
    with pytest.raises(ValueError, match=r"tv\.load already has a translation"):
        translates(tv.load)


def test_builtin_registers_the_stub_under_its_name():
    saved = dict(BUILTINS), dict(DEFINITIONS)
    try:
        def tile_frob(x: int, *, k: int = 2) -> int:
            """Frob ``x``."""

        fn = builtin(tile_frob)
        assert BUILTINS["tile_frob"] is fn and inspect.signature(fn) == inspect.signature(
            tile_frob)
        assert fn.__doc__ == "Frob ``x``." and definition_of(fn).translate is None
        renamed = builtin(tile_frob, name="tile_frob2", doc="Another.")
        assert renamed.__name__ == "tile_frob2" and renamed.__doc__ == "Another."
        assert inspect.signature(renamed) == inspect.signature(tile_frob)
    finally:
        for table, old in zip((BUILTINS, DEFINITIONS), saved):
            table.clear()
            table.update(old)


def test_the_builtins_emit_only_operations_of_tile_ir():
    # Every instruction the translations write is typed by ir/tile/ops.py (one place per op).
    for name in ("dot", "reduce", "atomic", "load", "store", "copy_async", "print", "cast"):
        assert name in OPS
    emitted = set()
    for path in _builtin_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and
                    node.func.attr in ("emit", "emit_raw", "emit_access") and len(node.args) > 1
                    and isinstance(node.args[1], ast.Constant)):
                emitted.add(node.args[1].value)
    assert emitted and emitted <= set(OPS), emitted - set(OPS)


def _builtin_sources():
    from pathlib import Path

    import tilevm.frontend.builtins as package

    return sorted(Path(package.__file__).parent.glob("*.py"))


@tv.kernel
def print_prefix_only(x: tv.Global[tv.f32, "n"]):
    tv.launch(grid=1)
    tv.debug_print("reached")


def test_debug_print_of_a_prefix_alone(capsys):
    kernel = print_prefix_only.ir()
    assert [s.op for s in kernel.body] == ["print"]
    print_prefix_only(np.zeros(4, np.float32))
    assert "reached" in capsys.readouterr().out
