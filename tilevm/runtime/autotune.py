"""``@tilevm.autotune``: a kernel whose constants are chosen per call from a declared space
(docs/tuning.md).

A call computes its tuning key from the argument sizes (by default: the first dimension rounded
up to a power of two, the others exact) and takes the configuration for that key from, in order:
the in-process table; the results loaded with :func:`tilevm.load_tuning`; the tuning database;
on a GPU, a tuning run (:func:`tilevm.runtime.tuner.tune`); without one (the CPU backend, the
interpreter) the static heuristic. :meth:`AutotunedKernel.choose` says which, without running;
``kernel.last_choice`` holds the last call's :class:`Choice`, and each first choice for a key is
logged on the ``tilevm.autotune`` logger.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import itertools
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tilevm.frontend.kernel import KernelFunction
from tilevm.runtime.tuning_db import (
    Fingerprint,
    TuningDatabase,
    canonical,
    decode_config,
    encode_config,
    kernel_source_hash,
    loaded_entries,
)

__all__ = ["AutotunedKernel", "Choice", "autotune", "default_key", "next_power_of_two"]

log = logging.getLogger("tilevm.autotune")

# How many elements each dimension keeps in the check against the CPU backend (see
# AutotunedKernel.reduced_sizes).
CHECK_SIZE = 256

KeyRule = str | int | Callable[[int], int]


def next_power_of_two(n: int) -> int:
    """The smallest power of two ≥ ``n`` (1 for n ≤ 1)."""
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def _bucket(value: int, rule: KeyRule, dim: str) -> int:
    if rule == "pow2":
        return next_power_of_two(value)
    if rule == "exact":
        return int(value)
    if isinstance(rule, int) and not isinstance(rule, bool) and rule > 0:
        return -(-int(value) // rule) * rule  # rounded up to a multiple of rule
    if callable(rule):
        return int(rule(int(value)))
    raise ValueError(f"key rule for '{dim}': expected 'pow2', 'exact', a positive int or a "
                     f"function, got {rule!r}")


def default_key(dim_names: Iterable[str]) -> dict[str, KeyRule]:
    """The default tuning key of a kernel whose dimensions are ``dim_names`` (in order of first
    use in its parameters): the first one (M of a matmul) rounded up to a power of two, every
    other one exact."""
    names = list(dim_names)
    return {n: "pow2" if i == 0 else "exact" for i, n in enumerate(names)}


@dataclass(frozen=True)
class Choice:
    """The configuration a call uses and where it came from.

    ``source``: ``"given"`` (the call named every tuned constant, or the space has one
    configuration), ``"loaded"`` (a file loaded with :func:`tilevm.load_tuning`),
    ``"database"`` (the tuning database), ``"tuned"`` (measured now), ``"heuristic"`` (no GPU:
    the static heuristic). ``where``: the GPU's fingerprint, or ``"no GPU (sm_80)"``."""

    config: dict[str, Any]
    source: str
    key: dict[str, int]
    where: str
    detail: str = ""

    def __str__(self) -> str:
        config = ", ".join(f"{k}={getattr(v, 'name', v)}" for k, v in self.config.items())
        key = ", ".join(f"{k}={v}" for k, v in self.key.items())
        how = {"given": "given by the call", "loaded": "from a loaded tuning file",
               "database": "from the tuning database", "tuned": "tuned now",
               "heuristic": "chosen by the static heuristic (no GPU measurement)"}[self.source]
        more = f"; {self.detail}" if self.detail else ""
        return f"{config} for [{key}] on {self.where}: {how}{more}"


class AutotunedKernel:
    """A ``@tilevm.kernel`` with a space of constants chosen per call (see :func:`autotune`)."""

    def __init__(self, kernel: KernelFunction, space: Mapping[str, Iterable[Any]] | None,
                 configs: Iterable[Mapping[str, Any]] | None,
                 prune: Callable[[dict[str, Any]], bool] | None,
                 key: Mapping[str, KeyRule] | Callable[[dict[str, int]], Mapping[str, int]]
                 | None, reference: Callable[..., Any] | None,
                 reference_config: Mapping[str, Any] | None,
                 check_sizes: Mapping[str, int] | Callable[[dict[str, int]], dict[str, int]]
                 | None, tolerance: float | dict[str, float] | None, tune: bool) -> None:
        self.kernel = kernel
        self.prune = prune
        self.reference = reference
        self.tolerance = tolerance
        self.tune_on_call = tune
        self._key = key
        self._check_sizes = check_sizes
        self._reference_config = dict(reference_config) if reference_config else None
        self.configs = self._expand(space or {}, configs or ())
        self.tuned_names = list(dict.fromkeys(n for c in self.configs for n in c))
        self.last_choice: Choice | None = None
        self._table: dict[tuple, Choice] = {}
        self._by_shape: dict[tuple, Choice] = {}
        self._lock = threading.Lock()
        functools.update_wrapper(self, kernel.fn)

    def _expand(self, space: Mapping[str, Iterable[Any]],
                configs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        params = inspect.signature(self.kernel.fn).parameters
        constants = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
        names = list(space)
        values = [list(space[n]) for n in names]
        out = [dict(zip(names, combo)) for combo in itertools.product(*values)] if names else []
        out += [dict(c) for c in configs]
        for c in out:
            unknown = [n for n in c if n not in constants]
            if unknown:
                known = ", ".join(sorted(constants)) or "none"
                raise ValueError(f"autotune of {self.kernel.fn.__name__}: '{unknown[0]}' is not "
                                 f"a constant of the kernel (its constants: {known})")
            encode_config(c)  # a TypeError names a constant JSON cannot hold
        unique = {json.dumps(encode_config(c), sort_keys=True): c for c in out}
        if not unique:
            raise ValueError(f"autotune of {self.kernel.fn.__name__}: the space is empty")
        return list(unique.values())

    # -- identity ------------------------------------------------------------------------------

    @property
    def qualname(self) -> str:
        return self.kernel.fn.__qualname__

    @functools.cached_property
    def source_hash(self) -> str:
        return kernel_source_hash(self.kernel.fn)

    @functools.cached_property
    def space_hash(self) -> str:
        text = json.dumps([encode_config(c) for c in self.configs], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def constants_text(self, constants: Mapping[str, Any]) -> dict[str, str]:
        """The constants a call gives, as text (part of the database key): those the space does
        not tune (dtype variables…) and tuned ones it fixes (which narrow the space)."""
        return {k: getattr(v, "name", None) or repr(v) for k, v in sorted(constants.items())}

    def identity(self, key: Mapping[str, int], constants: Mapping[str, Any]) -> tuple[str, ...]:
        """What a tuning result must match, besides the GPU's fingerprint, to serve a call with
        this key and these constants (:attr:`TuningEntry.identity`)."""
        return (self.qualname, self.source_hash, self.space_hash, canonical(dict(key)),
                canonical(self.constants_text(constants)))

    # -- the space, the key, the check ----------------------------------------------------------

    def candidates(self, constants: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The configurations a call with ``constants`` chooses from: those that agree with the
        tuned constants it names (the named value alone when none does)."""
        named = {k: v for k, v in (constants or {}).items() if k in self.tuned_names}
        fitting = [c for c in self.configs if all(c.get(k, v) == v for k, v in named.items())]
        return fitting or [named]

    def key_of(self, dims: Mapping[str, int]) -> dict[str, int]:
        """The tuning key of a call with sizes ``dims``: the ``key=`` rule of :func:`autotune`
        (default :func:`default_key`)."""
        if callable(self._key):
            return {str(k): int(v) for k, v in self._key(dict(dims)).items()}
        rules = self._key if self._key is not None else default_key(self.dim_names)
        missing = [d for d in rules if d not in dims]
        if missing:
            raise ValueError(f"autotune key of {self.qualname}: '{missing[0]}' is not a "
                             f"dimension of the kernel (its dimensions: {', '.join(dims)})")
        return {d: _bucket(dims[d], rule, d) for d, rule in rules.items()}

    @functools.cached_property
    def dim_names(self) -> tuple[str, ...]:
        """The kernel's dimensions in order of first use in its parameters (from the
        annotations: a kernel with dtype variables has them too)."""
        return self.kernel.dimension_names()

    def reduced_sizes(self, dims: Mapping[str, int]) -> dict[str, int]:
        """The sizes the check against the CPU backend runs at: ``check_sizes=`` of
        :func:`autotune` (a dict of caps or a function of the sizes), default every dimension
        capped at :data:`CHECK_SIZE`."""
        if callable(self._check_sizes):
            return dict(self._check_sizes(dict(dims)))
        caps = self._check_sizes or {}
        return {d: min(n, caps.get(d, CHECK_SIZE)) for d, n in dims.items()}

    def reference_config(self, constants: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The tuned constants the CPU-backend reference runs with: ``reference_config=`` of
        :func:`autotune`, else the kernel's own defaults, else the first candidate."""
        if self._reference_config is not None:
            return dict(self._reference_config)
        params = inspect.signature(self.kernel.fn).parameters
        defaults = {n: params[n].default for n in self.tuned_names}
        if all(v is not inspect.Parameter.empty for v in defaults.values()):
            return defaults
        return dict(self.candidates(constants)[0])

    # -- choosing ------------------------------------------------------------------------------

    def choose(self, *args: Any, device: str | None = None, **constants: Any) -> Choice:
        """The configuration a call with these arguments would use, and where it comes from
        (tuning first if that is what the call would do)."""
        shape_key = _shape_key(args, device, constants)
        if shape_key is not None:
            hit = self._by_shape.get(shape_key)
            if hit is not None:
                return hit
        choice = self._choose(args, device, constants)
        if shape_key is not None and len(self._by_shape) < _SHAPES_REMEMBERED:
            self._by_shape[shape_key] = choice
        return choice

    def explain(self, *args: Any, device: str | None = None, **constants: Any) -> str:
        """:meth:`choose` as a sentence."""
        return f"{self.qualname}: {self.choose(*args, device=device, **constants)}"

    def _choose(self, args: tuple, device: str | None, constants: dict[str, Any]) -> Choice:
        from tilevm.frontend.arguments import bind_arguments, call_device

        args, constants = self.kernel._by_name(args, constants)
        constants = self.kernel._bind_dtype_variables(args, constants)
        fixed = {k: v for k, v in constants.items() if k not in self.tuned_names}
        options = self.candidates(constants)
        ir = self.kernel.ir(**fixed, **options[0])
        device = device or call_device(ir, args, "cpu")
        bound = bind_arguments(ir, args, "cuda" if device == "cuda" else "host")
        dims = dict(bound.dims)
        key = self.key_of(dims)
        if len(options) == 1:
            return Choice(dict(options[0]), "given", key, device)
        identity = self.identity(key, constants)
        if device == "cuda":
            from tilevm.runtime import cuda_driver
            from tilevm.runtime.tuning_device import fingerprint_of

            gpu_index = next((t.device for t in bound.tensors.values()), 0)
            gpu = cuda_driver.cuda_device(gpu_index)
            fingerprint: Fingerprint | str = fingerprint_of(gpu)
            arch = gpu.arch
        else:
            gpu_index = 0
            arch = f"sm_{_cpu_target(ir)}"
            fingerprint = f"no GPU ({arch})"
        with self._lock:
            hit = self._table.get((identity, fingerprint))
            if hit is None:
                hit = self._lookup_or_tune(identity, fingerprint, arch, key, dims, bound,
                                           constants, gpu_index)
                self._table[(identity, fingerprint)] = hit
                log.info("%s: %s", self.qualname, hit)
        return hit

    def _lookup_or_tune(self, identity: tuple, fingerprint: Fingerprint | str, arch: str,
                        key: dict[str, int], dims: dict[str, int], bound: Any,
                        constants: dict[str, Any], gpu_index: int) -> Choice:
        from tilevm.runtime.tuner import ProgressBar, tune

        where = str(fingerprint)
        if isinstance(fingerprint, Fingerprint):
            for e in loaded_entries():
                if e.identity == identity and e.fingerprint == fingerprint:
                    return Choice(decode_config(e.config), "loaded", key, where)
            database = TuningDatabase()
            e = database.lookup(identity, fingerprint)
            if e is not None:
                return Choice(decode_config(e.config), "database", key, where,
                              str(database.path(self.qualname)))
            if self.tune_on_call and os.environ.get("TILEVM_AUTOTUNE", "1") != "0":
                from tilevm.runtime.tuning_device import CudaTuningDevice

                progress = ProgressBar(f"tuning {self.qualname} ") if sys.stderr.isatty() else None
                result = tune(self, dims, scalars=dict(bound.scalars), constants=constants,
                              device=CudaTuningDevice(gpu_index), progress=progress)
                return Choice(result.config, "tuned", key, where,
                              f"best of {len(result.candidates)} in {result.best.time_ms:.4f} ms")
        result = tune(self, dims, scalars=dict(bound.scalars), constants=constants, arch=arch,
                      device=None)
        return Choice(result.config, "heuristic", key, where,
                      f"{len(result.candidates)} candidates compiled for {arch}")

    # -- running -------------------------------------------------------------------------------

    def __call__(self, *args: Any, device: str | None = None, sanitize: bool | str = False,
                 **constants: Any) -> None:
        """Run the kernel with the configuration :meth:`choose` picks (``last_choice`` says
        which); the keywords are those of a ``@tilevm.kernel`` call."""
        choice = self.choose(*args, device=device, **constants)
        self.last_choice = choice
        options = {"sanitize": sanitize} if sanitize else {}
        self.kernel(*args, device=device, **options, **{**constants, **choice.config})

    def tune(self, dims: Mapping[str, int], **options: Any) -> Any:
        """:func:`tilevm.runtime.tuner.tune` for this kernel; a measured choice serves the calls
        of its key in this process from then on."""
        from tilevm.runtime.tuner import tune

        result = tune(self, dict(dims), **options)
        if result.entry is not None:
            choice = Choice(result.config, "tuned", result.key, str(result.fingerprint),
                            f"best of {len(result.candidates)} in {result.best.time_ms:.4f} ms")
            with self._lock:
                self._table[(result.entry.identity, result.fingerprint)] = choice
        return result

    def ir(self, **constants: Any) -> Any:
        """The Tile IR for ``constants``; tuned constants not given take
        :meth:`reference_config`'s values."""
        return self.kernel.ir(**{**self.reference_config(constants), **constants})

    def clear(self) -> None:
        """Forget every choice made in this process."""
        with self._lock:
            self._table.clear()
            self._by_shape.clear()

    def __repr__(self) -> str:
        return f"<tilevm autotuned kernel {self.qualname}: {len(self.configs)} configurations>"


def _cpu_target(ir: Any) -> int:
    from tilevm.runtime.cpu_device import cpu_target

    return cpu_target(ir)


# Shapes whose choice a kernel remembers (a server sees a new M per prompt length): past it,
# a new shape binds its arguments to find its key's choice, which is remembered by key.
_SHAPES_REMEMBERED = 4096


def _shape_key(args: tuple, device: str | None, constants: dict[str, Any]) -> tuple | None:
    """What the choice of a call depends on, read without binding its arguments: each
    argument's type, shape and device (scalars: their value), the device asked for and the
    constants; None when an argument is not understood (then the call binds its arguments)."""
    parts: list[Any] = [device]
    for a in args:
        shape = getattr(a, "shape", None)
        if shape is not None:
            parts.append((type(a), tuple(shape), str(getattr(a, "device", ""))))
        elif isinstance(a, (int, float)):
            parts.append(a)
        else:
            return None
    try:
        parts.append(tuple(sorted((k, repr(v)) for k, v in constants.items())))
        return tuple(parts)
    except TypeError:
        return None


def autotune(space: Mapping[str, Iterable[Any]] | None = None, *,
             configs: Iterable[Mapping[str, Any]] | None = None,
             prune: Callable[[dict[str, Any]], bool] | None = None,
             key: Mapping[str, KeyRule] | Callable[[dict[str, int]], Mapping[str, int]]
             | None = None,
             reference: Callable[..., Any] | None = None,
             reference_config: Mapping[str, Any] | None = None,
             check_sizes: Mapping[str, int] | Callable[[dict[str, int]], dict[str, int]]
             | None = None,
             tolerance: float | dict[str, float] | None = None,
             tune: bool = True) -> Callable[[Any], AutotunedKernel]:
    """Make a kernel choose its constants per call from a space (docs/tuning.md).

    Apply it above ``@tilevm.kernel`` (or to a plain function, which it makes a kernel).

    - ``space``: ``{constant: [values…]}``; the candidates are the product of the lists, then
      the explicit ``configs`` (dicts), duplicates dropped, in that order. Every name must be a
      constant (keyword-only parameter) of the kernel.
    - ``prune(config) -> bool``: False drops a candidate before it is compiled.
    - ``key``: which sizes tell calls apart. ``{dim: rule}`` with rule ``"pow2"`` (rounded up to
      a power of two), ``"exact"``, an int (rounded up to a multiple) or a function of the size;
      dimensions left out do not count. Or a function ``dims -> {name: int}``. Default
      (:func:`default_key`): the kernel's first dimension ``"pow2"``, the others ``"exact"``.
    - ``reference(*args) -> outputs``: the oracle the tuner checks candidates against, called
      with every parameter as a float64/int64 numpy array (outputs zeroed) or scalar, returning
      the output (several: a tuple in parameter order or a dict by name; None: written in place).
      Default: the kernel itself on the CPU backend with ``reference_config`` (default: the
      kernel's own default constants) at the sizes ``check_sizes`` (default: every dimension
      capped at 256).
    - ``tolerance``: for float outputs (a float, or a dict by output name); default 8 unit
      roundoffs of the output type + 1e-5, relative to ``|want| + max|want|``.
    - ``tune``: False never tunes at call time (the static heuristic picks on a GPU too; so does
      ``TILEVM_AUTOTUNE=0``).
    """
    def wrap(fn: Any) -> AutotunedKernel:
        if isinstance(fn, AutotunedKernel):
            raise TypeError("autotune: the kernel is autotuned already")
        if not isinstance(fn, KernelFunction):
            local = (sys._getframe(1).f_locals if "<locals>" in getattr(fn, "__qualname__", "")
                     else None)
            fn = KernelFunction(fn, local)
        return AutotunedKernel(fn, space, configs, prune, key, reference, reference_config,
                               check_sizes, tolerance, tune)

    return wrap
