"""``@tilevm.kernel``: a Python function compiled to Tile IR, callable on host arrays.

``kernel.ir(**constants)`` returns the verified Tile IR for those constants (cached);
``kernel(*args, device=None, **constants)`` checks and binds the arguments and runs it where they
live (DESIGN §5): on the CPU backend for host arrays, on the GPU for GPU tensors, on the
interpreter with ``device="interp"``.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

from tilevm.frontend.diagnostics import CompileError, internal_error
from tilevm.ir.tile.printer import print_stmt
from tilevm.ir.tile.program import Kernel

__all__ = ["DEFAULT_DEVICE", "KernelFunction", "kernel"]

# Host arrays run through the lowering on the CPU backend unless the call names a device.
DEFAULT_DEVICE = "cpu"


class KernelFunction:
    """A kernel written in the DSL. Build its IR with :meth:`ir`, run it by calling it."""

    def __init__(self, fn: Any, definition_locals: dict[str, Any] | None = None) -> None:
        self.fn = fn
        # Under `from __future__ import annotations` a kernel made inside a factory function has
        # its annotations as strings that may name the factory's variables: they are read from
        # the factory's local variables as they were when the kernel was decorated.
        self.definition_locals = dict(definition_locals or {})
        self._cache: dict[tuple, Kernel] = {}
        # The fast path of repeated GPU calls: a launcher per constants, as the call gave them
        # (tilevm.runtime.fast_launch).
        self._launchers: dict[tuple, Any] = {}
        functools.update_wrapper(self, fn)

    def ir(self, **constants: Any) -> Kernel:
        """The verified Tile IR for ``constants`` (defaults fill the rest).

        Raises :class:`~tilevm.frontend.diagnostics.CompileError` for a mistake in the kernel and
        :class:`~tilevm.frontend.diagnostics.InternalCompilerError` for a bug in tilevm.
        """
        key = tuple(sorted((k, repr(v)) for k, v in constants.items()))
        if key not in self._cache:
            self._cache[key] = self._build(constants)
        return self._cache[key]

    def _build(self, constants: dict[str, Any]) -> Kernel:
        from tilevm.frontend.transpiler.core import Transpiler
        from tilevm.ir.tile.verifier import verify

        transpiler = None
        try:
            transpiler = Transpiler(self.fn, constants, self.definition_locals)
            kernel = transpiler.build()
            verify(kernel)
            return kernel
        except CompileError as e:
            # the message names the user's line: the transpiler's frames would only bury it
            raise e.with_traceback(None) from None
        except TypeError as e:
            if transpiler is None or "unknown constant" in str(e):
                raise
            raise self._internal(e, transpiler, constants) from e
        except Exception as e:
            raise self._internal(e, transpiler, constants) from e

    def _internal(self, error: BaseException, transpiler: Any, constants: dict) -> Exception:
        ir_text = "(nothing built)"
        if transpiler is not None:
            blocks = transpiler.builder.blocks
            ir_text = "\n".join(print_stmt(s, 1) for s in blocks[0]) or "(empty body)"
        return internal_error(error, self.fn.__name__, ir_text,
                              {"kernel": self.fn.__qualname__, "constants": constants})

    def __call__(self, *args: Any, device: str | None = None, sanitize: bool | str = False,
                 **constants: Any) -> None:
        """Run the kernel on ``args`` (written in place); tensor and scalar arguments may also be
        given by name (``k(x, y=out)``), the other keywords are constants.

        ``device`` is ``"cpu"`` (the lowered kernel on the CPU backend: the default for host
        arrays), ``"cuda"`` (the GPU holding the arguments: the default for GPU tensors),
        ``"interp"`` (the reference interpreter) or another device registered with
        :func:`tilevm.frontend.devices.register_device`. Argument errors name the argument.

        ``sanitize=True`` (CPU backend only) runs the kernel under the sanitizer: blocks serially,
        every access checked, shared-memory races reported, then the grid again in a shuffled
        block order; the first problem raises ``SanitizerError`` naming the line
        (``sanitize="continue"``: all of them, at the end). docs/debugging.md shows it at work.
        """
        if device is None and not sanitize and self._launchers:
            try:
                launcher = self._launchers.get(tuple(constants.items()))
            except TypeError:  # an unhashable constant
                launcher = None
            if launcher is not None and launcher(args):
                return
        from tilevm.frontend.arguments import bind_arguments, call_device
        from tilevm.frontend.devices import fast_path_for, runner_for

        given = len(args)
        launcher_key = tuple(constants.items())
        args, constants = self._by_name(args, constants)
        constants = self._bind_dtype_variables(args, constants)
        try:
            kernel = self.ir(**constants)
        except CompileError as e:  # shown from the user's call, not from inside tilevm
            raise e.with_traceback(None) from None
        device = device or call_device(kernel, args, DEFAULT_DEVICE)
        runner = runner_for(device)
        if sanitize and device != "cpu":
            raise ValueError(f"kernel {self.fn.__name__}: sanitize= needs device='cpu' (the "
                             f"sanitizer is part of the CPU backend), not device={device!r}")
        bound = bind_arguments(kernel, args, "cuda" if device == "cuda" else "host")
        try:
            if sanitize:
                runner(kernel, bound, constants, sanitize=sanitize)  # type: ignore[call-arg]
            else:
                runner(kernel, bound, constants)
        except Exception as e:
            if device != "interp" or _is_program_error(e):
                raise  # the program did something undefined: the message names its line
            from tilevm.ir.tile.printer import print_kernel

            raise internal_error(e, self.fn.__name__, print_kernel(kernel), {
                "kernel": self.fn.__qualname__, "constants": constants, "device": device,
                "dims": bound.dims, "scalars": bound.scalars}) from e
        bound.finish()
        if device == "cuda" and not sanitize and len(args) == given:
            factory = fast_path_for("cuda")
            if factory is not None:
                try:
                    existing = self._launchers.get(launcher_key)
                except TypeError:  # an unhashable constant: no fast path
                    return
                launcher = factory(kernel, args, bound, existing)
                if launcher is not None:
                    self._launchers[launcher_key] = launcher

    def _bind_dtype_variables(self, args: tuple, constants: dict[str, Any]) -> dict[str, Any]:
        """``constants`` with each dtype variable (``tv.Dtype``) of the parameters bound to the
        dtype of its argument, unless given; two arguments that disagree are a ``TypeError``
        naming both."""
        variables = self._dtype_variables
        if not variables:
            return constants
        from tilevm.frontend.device_tensors import argument_dtype

        names = self._parameter_names
        bound = dict(constants)
        source: dict[str, str] = {}
        for param, variable in variables.items():
            index = names.index(param)
            if index >= len(args) or variable in constants:
                continue
            found = argument_dtype(args[index])
            if found is None:
                continue
            if variable in source and bound[variable] != found:
                raise TypeError(f"kernel {self.fn.__name__}: dtype variable '{variable}' is "
                                f"{bound[variable].name} from argument '{source[variable]}' but "
                                f"{found.name} from argument '{param}'")
            bound.setdefault(variable, found)
            source.setdefault(variable, param)
        return bound

    @functools.cached_property
    def _annotations(self) -> dict[str, Any]:
        """The parameters' annotations, evaluated (``from __future__ import annotations`` makes
        them strings); one that does not evaluate is left out (the transpiler reports it)."""
        out = {}
        for name, annotation in getattr(self.fn, "__annotations__", {}).items():
            if isinstance(annotation, str):
                try:
                    annotation = eval(annotation, self.fn.__globals__,
                                      self.definition_locals)
                except Exception:  # left to the transpiler's diagnostic
                    continue
            out[name] = annotation
        return out

    @functools.cached_property
    def _dtype_variables(self) -> dict[str, str]:
        """Parameter name -> the dtype variable (``tv.Dtype``) its annotation names."""
        from tilevm.frontend import dsl

        out = {}
        for name, annotation in self._annotations.items():
            spec_dtype = getattr(annotation, "dtype", None)
            if isinstance(annotation, (dsl.GlobalSpec, dsl.ScalarSpec)) and isinstance(
                    spec_dtype, dsl.Dtype):
                out[name] = spec_dtype.name
        return out

    def dimension_names(self) -> tuple[str, ...]:
        """The named dimensions of the tensor parameters, in order of first use, read from the
        annotations (no IR is built, so dtype variables need no binding)."""
        from tilevm.frontend import dsl

        names: list[str] = []
        for annotation in self._annotations.values():
            if isinstance(annotation, dsl.GlobalSpec):
                names += [d for d in annotation.dims if isinstance(d, str) and d not in names]
        return tuple(names)

    @functools.cached_property
    def _parameter_names(self) -> list[str]:
        import inspect

        return [p.name for p in inspect.signature(self.fn).parameters.values()]

    @functools.cached_property
    def _positional_names(self) -> list[str]:
        """The parameters a call may give by position or by name (tensors and scalars)."""
        import inspect
        return [p.name for p in inspect.signature(self.fn).parameters.values()
                if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]

    def _by_name(self, args: tuple, named: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        """Move tensor and scalar arguments given by name (``k(x=a, y=b)``) into ``args``; what
        is left are the constants."""
        if not named:
            return args, named
        params = self._positional_names
        if not any(name in named for name in params):
            return args, named
        named = dict(named)
        values = list(args)
        for name in params[len(args):]:
            if name not in named:
                raise TypeError(f"kernel {self.fn.__name__}: missing argument '{name}' (its "
                                f"parameters are {', '.join(params)})")
            values.append(named.pop(name))
        twice = [name for name in params[:len(args)] if name in named]
        if twice:
            raise TypeError(f"kernel {self.fn.__name__}: argument '{twice[0]}' is given by "
                            "position and by name")
        return tuple(values), named

    def __repr__(self) -> str:
        return f"<tilevm kernel {self.fn.__qualname__}>"


def _is_program_error(e: Exception) -> bool:
    from tilevm.ir.errors import KernelExecutionError

    return isinstance(e, KernelExecutionError)


def kernel(fn: Any) -> KernelFunction:
    """Make ``fn`` a tilevm kernel (docs/dsl.md). The function is read from its source, not run.

    A kernel may be defined inside a factory function and use the factory's arguments in its
    annotations and body (``def make(dt): @tv.kernel def k(x: tv.Global[dt, "n"]) ...``).
    """
    definition_locals = None
    if "<locals>" in getattr(fn, "__qualname__", ""):
        # Where the decorator is applied: the factory's frame (see KernelFunction.__init__).
        definition_locals = sys._getframe(1).f_locals
    return KernelFunction(fn, definition_locals)
