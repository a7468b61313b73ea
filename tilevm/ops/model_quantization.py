"""Quantizing a whole model in place: :func:`quantize_model` replaces its ``nn.Linear`` layers
with :class:`~tilevm.ops.quant_linear.QuantLinear` ones."""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from tilevm.ops.quant_linear import QuantLinear
from tilevm.runtime.tuner import ProgressBar

__all__ = ["quantize_model"]


def quantize_model(model: nn.Module, wtype: str = "u4", group_size: int | None = 128, *,
                   zero_point: bool = False, skip: Iterable[str] | Callable[[str, nn.Linear],
                                                                           bool] = (),
                   dtype: torch.dtype | None = None, scale_dtype: Any = None,
                   progress: bool | Callable[[str, int, int], None] | None = None
                   ) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` in place with :meth:`QuantLinear.from_linear`
    of it, except those ``skip`` names: qualified module names or ``fnmatch`` patterns
    (``"lm_head"``, ``"*.gate"``), or a function ``skip(name, linear) -> bool``. A linear
    reachable under several names is quantized once and replaced under every name (kept float
    everywhere if ``skip`` names any of them). Subclasses of ``nn.Linear`` (such as
    ``nn.MultiheadAttention``'s ``out_proj``, whose weight the attention reads directly) are
    left alone. Every layer is quantized before any is replaced: an error leaves ``model`` as
    it was. ``progress``: a bar on stderr (None, the default: when stderr is a terminal), or a
    function called as ``progress("quantize", done, total)`` after each layer. Returns
    ``model``."""
    if callable(skip):
        skipped = skip
    else:
        patterns = list(skip)

        def skipped(name: str, _: nn.Linear) -> bool:
            return any(fnmatch.fnmatchcase(name, p) for p in patterns)

    if type(model) is nn.Linear:
        raise ValueError("quantize_model: model is itself an nn.Linear, which cannot be replaced "
                         "in place; use QuantLinear.from_linear(model, ...)")
    names: dict[int, list[str]] = {}  # each linear's names, shared ones under every name
    linears: dict[int, nn.Linear] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if type(module) is nn.Linear:
            names.setdefault(id(module), []).append(name)
            linears[id(module)] = module
    targets = [key for key, linear in linears.items()
               if not any(skipped(name, linear) for name in names[key])]
    if progress is None:
        progress = sys.stderr.isatty()
    report = (ProgressBar("tilevm ") if progress is True else progress) or None
    quantized = {}
    for done, key in enumerate(targets, 1):
        quantized[key] = QuantLinear.from_linear(
            linears[key], wtype, group_size, zero_point=zero_point, dtype=dtype,
            scale_dtype=scale_dtype)
        if report is not None:
            report("quantize", done, len(targets))
    for key in targets:
        for name in names[key]:
            parent_name, _, attribute = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, attribute, quantized[key])
    return model

