"""Conformance kernels: one small Thread IR kernel per family of intrinsic variants, with inputs
from fixed seeds, whose GPU outputs are held to the CPU backend's (issue 10; DESIGN §1, §8).

- ``mma.sync``: every shape and type pair (:mod:`~tilevm.conformance.mma`);
- ``ldmatrix`` x1/x2/x4 with and without ``.trans``, ``shfl.sync`` in every mode
  (:mod:`~tilevm.conformance.warp`);
- ``cp.async`` with zero-fill (:mod:`~tilevm.conformance.memory`);
- ``fma.rn.bf16x2`` (and ``fma.rn.f16x2``, ``mul.rn.bf16x2``) on subnormal inputs, and the
  ``.approx`` instructions (:mod:`~tilevm.conformance.arith`);
- every cast of a type of at most 8 bits to f16/bf16, sm_80 and sm_90 lowering rules, natural and
  free order (:mod:`~tilevm.conformance.casts`).

A :class:`Launch` carries the kernel, grid, buffers and checks; :func:`run_on_cpu_backend` gives
the outputs a GPU must reproduce (:mod:`~tilevm.conformance.compare` says how closely);
``bench/gpu_check.py`` compiles the kernels to sm_90 cubins, runs them on a GPU and records the
golden outputs of the ``golden`` launches (:mod:`~tilevm.conformance.goldens`) under
``tests/golden/``. :mod:`~tilevm.conformance.compare` and :mod:`~tilevm.conformance.goldens`
import only numpy (the GPU machine loads them by file path); nothing in tilevm imports this
package.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from tilevm.conformance.arith import approx_launch, half_arith_launch
from tilevm.conformance.casts import CAST_FAMILIES, CAST_ORDERS, CAST_RULES, cast_launch
from tilevm.conformance.launch import Check, Launch, ScalarArg, run_on_cpu_backend
from tilevm.conformance.memory import cp_async_launch
from tilevm.conformance.mma import FAMILIES as MMA_FAMILIES
from tilevm.conformance.mma import mma_launch
from tilevm.conformance.warp import ldmatrix_launch, shfl_launch

__all__ = ["Check", "Launch", "ScalarArg", "conformance_launch", "conformance_launch_names",
           "conformance_launches", "golden_launch_names", "run_on_cpu_backend"]


def _builders() -> dict[str, tuple[Callable[[], Launch], bool]]:
    """name -> (builder, whether its outputs are recorded as goldens)."""
    builders: dict[str, tuple[Callable[[], Launch], bool]] = {
        f"conformance_{family}": (partial(mma_launch, family), True) for family in MMA_FAMILIES}
    for name, build in (("conformance_ldmatrix", ldmatrix_launch),
                        ("conformance_shfl", shfl_launch),
                        ("conformance_cp_async", cp_async_launch),
                        ("conformance_half_arith", half_arith_launch),
                        ("conformance_approx", approx_launch)):
        builders[name] = (build, True)
    for family in CAST_FAMILIES:
        for order in CAST_ORDERS:
            for rules in CAST_RULES:
                name = f"conformance_cast_{family}_{order}_sm{rules}"
                # goldens hold natural order only (see tilevm.conformance.casts)
                builders[name] = (partial(cast_launch, family, rules, order), order == "natural")
    return builders


_BUILDERS = _builders()


def golden_launch_names() -> list[str]:
    """The launches whose GPU outputs are recorded under ``tests/golden/`` (building none)."""
    return [name for name, (_, golden) in _BUILDERS.items() if golden]


def conformance_launch_names() -> list[str]:
    """The names of every conformance launch, in a fixed order (building none)."""
    return list(_BUILDERS)


def conformance_launch(name: str) -> Launch:
    """Build the launch ``name`` (its kernel and its fixed-seed inputs); raises ``KeyError``
    naming the known launches for another name."""
    if name not in _BUILDERS:
        raise KeyError(f"no conformance launch {name!r}; known: {', '.join(_BUILDERS)}")
    build, golden = _BUILDERS[name]
    launch = build()
    assert launch.name == name and launch.golden == golden, (launch.name, name, launch.golden)
    return launch


def conformance_launches() -> list[Launch]:
    """Every conformance launch."""
    return [conformance_launch(name) for name in _BUILDERS]
