"""The translation of a ``@tilevm.kernel`` function's syntax tree into Tile IR, by concern:

- :mod:`~tilevm.frontend.transpiler.core`: :class:`Transpiler`, the kernel's parameters,
  dimensions and constants, put together from the parts below;
- :mod:`~tilevm.frontend.transpiler.base`: the state of a translation and its diagnostics;
- :mod:`~tilevm.frontend.transpiler.scopes`: names and the frames of nested blocks;
- :mod:`~tilevm.frontend.transpiler.statements`: assignments and control flow;
- :mod:`~tilevm.frontend.transpiler.expressions`: operators, attributes, subscripts;
- :mod:`~tilevm.frontend.transpiler.calls`: calls of builtins, Python functions and helpers;
- :mod:`~tilevm.frontend.transpiler.operands`: operands, emitting instructions, argument checks;
- :mod:`~tilevm.frontend.transpiler.value` and :mod:`~tilevm.frontend.transpiler.source`: a
  run-time value, a function's parsed source.

What each DSL builtin (``tv.load``…) translates to is defined with the builtin, in
:mod:`tilevm.frontend.builtins`. Import :class:`Transpiler` from ``core``: this package imports
nothing itself, so that the builtins can use its values without importing the whole transpiler.
"""
