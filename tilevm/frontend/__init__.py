"""The frontend: Python → Tile IR, and the text form → Tile IR.

- :mod:`~tilevm.frontend.dsl`: the public names of the DSL (``tv.load``, ``tv.Global``…);
- :mod:`~tilevm.frontend.builtins`: each DSL builtin (``tv.load``…) defined once, its signature
  and docstring beside its translation into Tile IR (``docs/adding-an-op.md``);
- :mod:`~tilevm.frontend.kernel`: ``@tilevm.kernel`` and calling a kernel;
- :mod:`~tilevm.frontend.transpiler` and :mod:`~tilevm.frontend.builder`: the syntax tree of a
  kernel function translated into Tile IR (statements, expressions, calls… one module each);
- :mod:`~tilevm.frontend.diagnostics`: user errors at file:line:col, internal compiler errors;
- :mod:`~tilevm.frontend.arguments`: a call's arguments checked and bound;
- :mod:`~tilevm.frontend.devices`: the table of devices a call can run on;
- :mod:`~tilevm.frontend.text` and ``tile_ir.lark``: the parser of the text form.
"""
