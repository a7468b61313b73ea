"""The DSL's builtins (``tv.load``, ``tv.dot``…), each defined once: its public function
(signature and docstring) beside its translation into Tile IR (see
:mod:`~tilevm.frontend.builtins.registry`), grouped by concern:

- :mod:`~tilevm.frontend.builtins.grid`: ``launch``, ``block_idx``, ``grid_dim``;
- :mod:`~tilevm.frontend.builtins.loops`: ``range``;
- :mod:`~tilevm.frontend.builtins.creation`: ``zeros``, ``full``, ``arange``;
- :mod:`~tilevm.frontend.builtins.memory`: ``load``, ``store``, ``shared``, ``workspace``;
- :mod:`~tilevm.frontend.builtins.async_copy`: ``copy_async``, ``commit``, ``wait``;
- :mod:`~tilevm.frontend.builtins.sync`: ``sync``, ``fence``;
- :mod:`~tilevm.frontend.builtins.dot`: ``dot``;
- :mod:`~tilevm.frontend.builtins.convert`: ``cast``, ``bitcast``, ``view``, ``convert_layout``;
- :mod:`~tilevm.frontend.builtins.elementwise`: ``where``, ``maximum``, ``minimum``, ``fma``,
  ``cdiv``, ``rint``, ``exp``, ``sqrt``… (the one-operand ones from a table);
- :mod:`~tilevm.frontend.builtins.reduce`: ``reduce``, ``sum``, ``max``, ``min``;
- :mod:`~tilevm.frontend.builtins.shape`: ``transpose``, ``reshape``, ``broadcast``;
- :mod:`~tilevm.frontend.builtins.atomics`: ``atomic``, ``atomic_add``…;
- :mod:`~tilevm.frontend.builtins.debug`: ``debug_print``.

Importing this package defines them all; :data:`BUILTINS` maps each name to its public function.
"""

from tilevm.frontend.builtins import (  # noqa: F401  (each module registers its builtins)
    async_copy,
    atomics,
    convert,
    creation,
    debug,
    dot,
    elementwise,
    grid,
    loops,
    memory,
    reduce,
    shape,
    sync,
)
from tilevm.frontend.builtins.registry import (
    BUILTINS,
    DEFINITIONS,
    Builtin,
    OutsideKernelError,
    definition_of,
)

__all__ = ["BUILTINS", "DEFINITIONS", "Builtin", "OutsideKernelError", "definition_of"]

_untranslated = sorted(name for name, d in DEFINITIONS.items() if d.translate is None)
if _untranslated:  # a definition without its translation is a bug in tilevm, found on import
    raise RuntimeError(f"tilevm builtins without a translation: {', '.join(_untranslated)}")

