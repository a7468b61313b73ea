"""The compiled-kernel artifact (DESIGN §7): a cubin plus a JSON description from which the
runtime launches the kernel without the frontend — no DSL, no Tile IR, no compiler. The binary
cache stores exactly this; ``bench/gpu_check.py`` carries artifacts to a GPU machine.

The description (``FORMAT`` 1) holds: the kernel's name and CUDA symbol, the target, the block
size, the dynamic shared memory, the parameters as the caller passes them (tensors with dtype
and dimension names, scalars with dtype), the ABI the cubin takes (``tilevm.backend.lower.abi``),
the grid as a small integer program over the sizes and scalars, the workspaces, the
specialization the binary assumes (a call must satisfy it), the constants, ptxas's resources,
and the cubin's SHA-256 (a corrupt artifact is refused, never launched).
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tilevm.frontend.arguments import BoundArguments, bind_arguments
from tilevm.ir.dtypes import dtype
from tilevm.ir.thread.types import scalar_type
from tilevm.ir.thread.values import Const
from tilevm.ir.tile.program import Const as TileConst
from tilevm.ir.tile.program import Instr, Var
from tilevm.ir.tile.types import ScalarType, TensorType

__all__ = ["FORMAT", "ArtifactError", "KernelArtifact", "build_artifact"]

FORMAT = 1

# The integer operations a grid program may use, with Python's (the interpreter's) semantics;
# each result then wraps to its dtype.
_GRID_OPS = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "floordiv": lambda a, b: a // b if b else a, "mod": lambda a, b: a % b if b else 0,
    "cdiv": lambda a, b: -(-a // b), "min": min, "max": max,
    "and": lambda a, b: a & b, "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b,
    "shl": lambda a, b: a << b if 0 <= b < 64 else 0,
    "shr": lambda a, b: a >> b if 0 <= b < 64 else (-1 if a < 0 else 0),
    "cast": lambda a: a, "neg": lambda a: -a,
}


class ArtifactError(ValueError):
    """An artifact that cannot be built, read or launched as asked."""


@dataclass
class KernelArtifact:
    """A compiled kernel: ``cubin`` and its ``description`` (see the module docstring)."""

    cubin: bytes
    description: dict[str, Any]
    _modules: dict[int, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return self.description["name"]

    # -- files --------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write ``NAME.cubin`` and ``NAME.json`` into ``directory``; returns the JSON's path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        stem = self.description["file_stem"]
        (directory / f"{stem}.cubin").write_bytes(self.cubin)
        path = directory / f"{stem}.json"
        path.write_text(json.dumps(self.description, indent=1, sort_keys=True) + "\n")
        return path

    @staticmethod
    def load(path: str | Path) -> KernelArtifact:
        """Read the artifact whose description is at ``path`` (its cubin beside it). Raises
        :class:`ArtifactError` for a missing, corrupt or newer-format artifact."""
        path = Path(path)
        try:
            description = json.loads(path.read_text())
            cubin = path.with_suffix(".cubin").read_bytes()
        except (OSError, ValueError) as e:
            raise ArtifactError(f"cannot read the kernel artifact {path}: {e}") from None
        if description.get("format") != FORMAT:
            raise ArtifactError(f"{path}: artifact format {description.get('format')!r}; this "
                                f"tilevm reads format {FORMAT}")
        if hashlib.sha256(cubin).hexdigest() != description.get("cubin_sha256"):
            raise ArtifactError(f"{path}: the cubin does not match its checksum (corrupt "
                                "artifact); rebuild it")
        return KernelArtifact(cubin, description)

    # -- launch -------------------------------------------------------------------------------

    def grid(self, dims: dict[str, int], scalars: dict[str, int | float]) -> tuple[int, ...]:
        """The grid of a launch with these sizes and scalars (the kernel's ``tv.launch``)."""
        values: dict[str, int] = {**{k: int(v) for k, v in scalars.items()}, **dims} \
            if scalars else dict(dims)
        steps, axes = self._grid_steps
        for result, op, fn, args, nbits, signed in steps:
            operands = [values[a] if type(a) is str else a for a in args]
            if op == "cdiv" and operands[1] == 0:
                raise ArtifactError(f"kernel {self.name}: the grid divides by zero")
            value = fn(*operands) & ((1 << nbits) - 1)  # wrapped to the step's dtype
            if signed and value >> (nbits - 1):
                value -= 1 << nbits
            values[result] = value
        return tuple(values[a] if type(a) is str else a for a in axes)

    @functools.cached_property
    def _grid_steps(self) -> tuple[list[tuple], list[Any]]:
        """The grid program with its operations and dtypes looked up once: steps of (result,
        op, function, operands, bits, signed), operands names or integers; and the axes."""
        program = self.description["grid"]

        def operand(a: dict[str, Any]) -> Any:
            return int(a["const"]) if "const" in a else a["var"]

        steps = []
        for step in program["steps"]:
            dt = dtype(step["dtype"])
            steps.append((step["result"], step["op"], _GRID_OPS[step["op"]],
                          [operand(a) for a in step["args"]], dt.nbits, dt.is_signed))
        return steps, [operand(a) for a in program["axes"]]

    def bind(self, args: tuple[Any, ...]) -> BoundArguments:
        """Check ``args`` (GPU tensors and scalars, in the kernel's parameter order) against the
        parameters; errors name the argument."""
        return bind_arguments(self._signature, args, "cuda")

    def launch(self, *args: Any, stream: int | None = None) -> None:
        """Run the kernel on ``args`` (CUDA torch tensors, ``__cuda_array_interface__`` or
        DLPack objects, ``tv.packed`` bytes, scalars) on the GPU that holds them, queued on
        ``stream`` (default: torch's current stream when an argument is a torch tensor, else
        the legacy default stream). No host synchronization."""
        self.launch_bound(self.bind(args), stream)

    def launch_bound(self, bound: BoundArguments, stream: int | None = None,
                     spec: Any = None) -> None:
        """:meth:`launch` on arguments bound already (by :meth:`bind` or the frontend); ``spec``
        is the call's :class:`~tilevm.backend.lower.Specialization` when the caller computed it
        (it is then not computed again)."""
        from tilevm.runtime import cuda_driver
        from tilevm.runtime.gpu_workspaces import stream_of, workspaces_for

        self._check_specialization(bound, spec)
        index = next((t.device for t in bound.tensors.values()), 0)
        device = cuda_driver.cuda_device(index)
        if device.arch != self.description["target"].removesuffix("a"):
            raise ArtifactError(f"kernel {self.name} was compiled for "
                                f"{self.description['target']}; {device.name} is "
                                f"{device.arch}")
        grid = self.grid(bound.dims, bound.scalars)
        if any(g == 0 for g in grid):
            return
        function = self._function(device)
        stream = stream_of(bound) if stream is None else stream
        workspaces = workspaces_for(self, device, bound, stream)
        arguments = self.pack(bound, workspaces)
        function.launch(grid, (self.description["block_threads"],), arguments,
                        self.description["shared_bytes"], stream)

    def pack(self, bound: BoundArguments, workspaces: dict[str, int]) -> list[Any]:
        """The kernel's parameters as ctypes values, in the ABI's order: tensor base addresses,
        element offsets and strides, scalars in their storage form, sizes, workspace addresses."""
        from tilevm.runtime.cpu_device import scalar_argument

        params = {p["name"]: p for p in self.description["params"]}
        out: list[Any] = []
        for a, t in zip(self.description["abi"], self._abi_types, strict=True):
            kind, source = a["kind"], a["source"]
            if kind == "pointer":
                value: int = bound.tensors[source].data_ptr
            elif kind == "offset":
                value = bound.tensors[source].offset
            elif kind == "stride":
                value = bound.tensors[source].strides[a["dim"]]
            elif kind == "scalar":
                dt = dtype(params[source]["dtype"])
                value = scalar_argument(dt, bound.scalars[source])
            elif kind == "size":
                value = bound.dims[source]
            else:
                value = workspaces[source]
            bits = Const.of(value, t).bits
            out.append(_CTYPES[32 if t.kind == "pred" else t.bits](bits))  # as emit_cuda declares
        return out

    def _function(self, device: Any) -> Any:
        with self._lock:
            function = self._modules.get(device.index)
            if function is None:
                module = device.load_module(self.cubin)
                function = module.function(self.description["entry"])
                function.allow_dynamic_shared(self.description["shared_bytes"])
                self._modules[device.index] = function
        return function

    @functools.cached_property
    def _signature(self) -> _Signature:
        return _Signature.of(self.description)

    @functools.cached_property
    def _abi_types(self) -> list[Any]:
        return [scalar_type(a["type"]) for a in self.description["abi"]]

    def _check_specialization(self, bound: BoundArguments, got: Any = None) -> None:
        from tilevm.backend.lower.specialization import Specialization

        want = self.description["specialization"]
        if got is None:
            got = Specialization.of_arguments(self._signature, bound.tensors, bound.dims)
        for name, facts in want["tensors"].items():
            have = got.tensor(name)
            if facts["aligned"] and not have.aligned:
                raise ArtifactError(f"argument '{name}': kernel {self.name} was compiled for "
                                    "16-byte aligned data; this tensor is not")
            if facts.get("offsets32") and not have.offsets32:
                raise ArtifactError(f"argument '{name}': kernel {self.name} was compiled for "
                                    "tensors whose element offsets fit in i32; this one reaches "
                                    "2^31 elements or more")
            for dim, fact in enumerate(facts["strides"]):
                if fact != "any" and have.stride(dim) != fact:
                    what = "1" if fact == "1" else "a multiple of 128 bits"
                    raise ArtifactError(f"argument '{name}': kernel {self.name} was compiled "
                                        f"for stride {dim} = {what}; this tensor's is "
                                        f"{bound.tensors[name].strides[dim]}")
        for dim in want["dims16"]:
            if dim not in got.dims16:
                raise ArtifactError(f"kernel {self.name} was compiled for '{dim}' a multiple "
                                    f"of 16; the call has {dim} = {bound.dims[dim]}")


_CTYPES = {8: ctypes.c_uint8, 16: ctypes.c_uint16, 32: ctypes.c_uint32, 64: ctypes.c_uint64}


@dataclass(frozen=True)
class _Signature:
    """The parameters of an artifact as :func:`bind_arguments` reads a kernel's."""

    name: str
    params: tuple[Var, ...]

    @staticmethod
    def of(description: dict[str, Any]) -> _Signature:
        params = []
        for p in description["params"]:
            dt = dtype(p["dtype"])
            ty = (TensorType(dt, tuple(p["shape"]), "global") if p["kind"] == "tensor"
                  else ScalarType(dt))
            params.append(Var(p["name"], ty))
        return _Signature(description["name"], tuple(params))


def _grid_program(kernel: Any) -> dict[str, Any]:
    """The launch block of ``kernel`` (Tile IR) as a JSON program; :class:`ArtifactError` for an
    operation the launcher cannot evaluate."""
    def operand(x: Any) -> dict[str, Any]:
        if isinstance(x, TileConst):
            return {"const": int(x.value)}
        return {"var": x.name}

    steps = []
    for s in kernel.launch_body:
        ok = (isinstance(s, Instr) and s.op in _GRID_OPS and s.result is not None
              and isinstance(s.result.type, ScalarType) and s.result.type.dtype.is_integer
              and all(isinstance(a, (Var, TileConst)) for a in s.args))
        if not ok:
            where = f" (line {s.loc.line})" if getattr(s, "loc", None) else ""
            raise ArtifactError(f"kernel {kernel.name}: its grid computes "
                                f"'{getattr(s, 'op', type(s).__name__)}'{where}, which a launch "
                                "without the compiler cannot evaluate; compute the grid with "
                                "integer +, -, *, //, %, cdiv, min, max or bit operations")
        steps.append({"result": s.result.name, "op": s.op, "dtype": s.result.type.dtype.name,
                      "args": [operand(a) for a in s.args]})
    return {"steps": steps, "axes": [operand(g) for g in kernel.grid]}


def build_artifact(kernel: Any, target: str = "sm_90", spec: Any = None,
                   **constants: Any) -> KernelArtifact:
    """Lower and compile ``kernel`` (a ``@tilevm.kernel`` function with ``constants``, or its
    Tile IR) for ``target`` under ``spec`` (as :func:`tilevm.compile` takes it) into an
    artifact. Needs NVRTC, not a GPU."""
    from tilevm.runtime.compile import compile_kernel

    compiled = compile_kernel(kernel, target, spec, **constants)
    return artifact_of(compiled)


def artifact_of(compiled: Any) -> KernelArtifact:
    """The artifact of a :class:`~tilevm.runtime.compile.CompiledKernel`."""
    lowered, tile = compiled.lowered, compiled.source_ir
    thread = lowered.thread
    params = []
    for p in tile.params:
        if isinstance(p.type, TensorType):
            params.append({"name": p.name, "kind": "tensor", "dtype": p.type.dtype.name,
                           "shape": list(p.type.shape)})
        else:
            params.append({"name": p.name, "kind": "scalar", "dtype": p.type.dtype.name})
    spec = lowered.spec
    description = {
        "format": FORMAT,
        "name": tile.name,
        "entry": thread.name,
        "file_stem": f"{tile.name}.{compiled.target}.{_spec_digest(spec)}",
        "target": compiled.target,
        "block_threads": thread.block_threads,
        "shared_bytes": thread.shared_bytes,
        "params": params,
        "abi": [{"name": a.name, "kind": a.kind, "source": a.source, "type": str(a.type),
                 "dim": a.dim} for a in lowered.abi],
        "grid": _grid_program(tile),
        "workspaces": [{"name": w.name, "shape": list(w.shape), "dtype": w.dtype.name,
                        "zeroed": w.zeroed, "restored": w.restored}
                       for w in lowered.workspaces],
        "specialization": {
            "tensors": {n: {"aligned": f.aligned, "strides": list(f.strides),
                            "offsets32": f.offsets32} for n, f in spec.tensors},
            "dims16": sorted(spec.dims16)},
        "constants": {k: repr(v) for k, v in tile.constants},
        "resources": dataclasses.asdict(compiled.resources),
        "cubin_sha256": hashlib.sha256(compiled.cubin).hexdigest(),
    }
    return KernelArtifact(compiled.cubin, description)


def _spec_digest(spec: Any) -> str:
    return hashlib.sha256(repr(spec).encode()).hexdigest()[:12]
