"""The low-bit-weight linear layer for PyTorch, :class:`QuantLinear`, and :func:`dequantize`.

A layer computes ``y = x · Wᵀ + bias`` with W stored as codes of 1 to 8 bits (see
:mod:`tilevm.kernels.quant_linear` for the types and the arithmetic) through the ops of
:mod:`tilevm.ops.linear_ops`: CPU tensors on the CPU backend, CUDA tensors on the GPU.

Buffers of a layer (all in its state_dict, which round-trips through ``load_state_dict``):

- ``qweight``: uint8 (out_features, kp·bits/8), each row the packed codes (LSB first) of one
  output feature, k padded to ``kp`` (:func:`tilevm.kernels.quantize.padded_k`);
- ``scales``: (out_features, groups) in the layer's activation dtype (f16 or bf16);
- ``qzeros``: uint8, the packed zero points (out_features × groups, one bit stream), only with
  ``zero_point=True``;
- ``bias``: (out_features) in the activation dtype, when the layer has one.

The extra state records the weight type, group size and zero-point flag; loading a state_dict
saved with others is an error naming them.

Calls run on the weights' prepared form (:mod:`tilevm.kernels.prepared_weights`: each lane's
codes one contiguous run per step), made from these buffers by :meth:`QuantLinear.prepare` when
a layer is quantized, imported or loaded, and kept in non-persistent buffers (``prepared_codes``,
``prepared_scales``, ``prepared_zeros``) that move with the module; the ``tilevm::prepared_linear``
op runs them (an eager call that nothing observes runs the op's implementation without the
dispatcher). A layer constructed but not yet loaded runs ``tilevm::quant_linear`` on its dense
codes.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

import tilevm as tv
from tilevm.kernels.prepared_weights import PreparedWeights, prepare_linear_weights
from tilevm.kernels.quant_linear import check_block_format, weight_dtype
from tilevm.kernels.quantize import dequantized, padded_k, quantize_kernel, scheme_constants
from tilevm.kernels.quantized_checkpoints import ImportedWeights, import_awq, import_gptq
from tilevm.ops.linear_ops import (
    TORCH_ACTIVATIONS,
    TORCH_BLOCK_SCALES,
    dispatcher_adds_nothing,
    prepared_linear,
    quant_linear,
    run_prepared,
    scale_groups,
)

__all__ = ["QuantLinear", "dequantize"]

_SAME_WIDTH_INTEGER = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _group_size(group_size: int | None) -> int:
    """0 for per channel (also written None or -1, as GPTQ does), else the group size."""
    if group_size is None or group_size in (0, -1):
        return 0
    if group_size < 0 or (group_size % 32 and group_size != 16):
        raise ValueError(f"group_size={group_size}: 16, a multiple of 32, or -1/None per "
                         "channel")
    return int(group_size)


def _block_scale_type(scale_dtype: Any) -> tv.DType | None:
    """The block scale type ``scale_dtype`` names (a tilevm name or alias, or a torch dtype),
    or None; ValueError for any other type."""
    if scale_dtype is None:
        return None
    name = str(scale_dtype).removeprefix("torch.")
    by_torch_name = {str(t).removeprefix("torch."): n for n, t in TORCH_BLOCK_SCALES.items()}
    try:
        dt = tv.dtype(by_torch_name.get(name, name))
    except ValueError:
        dt = None
    if dt is None or dt.name not in TORCH_BLOCK_SCALES:
        raise ValueError(f"scale_dtype={scale_dtype}: the block scale types are f8e8m0fnu (MX) "
                         "and f8e4m3fn (NVFP4)")
    return dt


def _packed_bytes(count: int, bits: int) -> int:
    return -(-count * bits // 8)


def dequantize(layer: QuantLinear) -> torch.Tensor:
    """The weights a layer multiplies by, ``(q − z) · s`` in float64 (out × in), computed on the
    host from its buffers (for checks and for falling back to a float layer)."""
    wt = layer.weight_type
    n, k = layer.out_features, layer.in_features
    kp = layer.qweight.shape[1] * 8 // wt.nbits
    groups = layer.scales.shape[1]
    codes = tv.packed(layer.qweight.detach().cpu().reshape(-1), wt, (n, kp)).bits()
    zeros = (None if layer.qzeros is None else
             tv.packed(layer.qzeros.detach().cpu(), wt, (n, groups)).bits())
    scales = layer.scales.detach().cpu().float().double().numpy()
    return torch.from_numpy(dequantized(codes, scales, zeros, wt, layer.group_size, k))


class QuantLinear(nn.Module):
    """A drop-in ``nn.Linear`` whose weights are codes of 1 to 8 bits (``wtype``), with a scale
    per ``group_size`` inputs of each output (None/-1/0: per output) and, for integer types,
    optional zero points; activations in ``dtype`` (f16 or bf16; inputs of another float dtype
    are converted, and the result converted back; ``.to(torch.bfloat16)`` or ``.half()``
    changes it, ``.float()`` does not). Scales are in ``dtype``, or with
    ``scale_dtype`` a block-scaled format: ``"f8e8m0fnu"`` (OCP MX: f4e2m1, f6e2m3, f6e3m2 or
    f8e4m3 weights, group 32) or ``"f8e4m3fn"`` (NVFP4: f4e2m1 weights, group 16).
    ``deterministic``: decode steps (at most 16 rows, the split-K kernel) reduce their partial
    sums in a fixed order, so every run gives the same bits (an attribute, not saved state).
    Gradients flow to the input (``grad_y · W``, W the dequantized weights), not to the weights,
    which are buffers."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 wtype: str = "u4", group_size: int | None = 128, zero_point: bool = False,
                 scale_dtype: Any = None, dtype: torch.dtype = torch.float16,
                 device: Any = None, deterministic: bool = False) -> None:
        super().__init__()
        wt = weight_dtype(wtype)
        if dtype not in TORCH_ACTIVATIONS:
            raise ValueError(f"dtype={dtype}: QuantLinear computes in float16 or bfloat16")
        block = _block_scale_type(scale_dtype)
        if block is not None:
            check_block_format(wt, block, _group_size(group_size))
            if zero_point:
                raise ValueError("zero_point=True: block-scaled weights have no zero points")
        self.scale_type = block
        if zero_point and wt.kind == "float":
            raise ValueError(f"zero_point=True: {wt.name} weights have no zero points "
                             "(integer types only)")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight_type, self.group_size, self.zero_point = wt, _group_size(group_size), bool(
            zero_point)
        self.dtype = dtype
        # A choice of how to run, not part of the weights (nor of the saved state).
        self.deterministic = bool(deterministic)
        kp = padded_k(self.in_features, self.group_size)
        groups = scale_groups(self.in_features, self.group_size)
        self.register_buffer("qweight", torch.zeros(
            (self.out_features, kp * wt.nbits // 8), dtype=torch.uint8, device=device))
        scales_dtype = dtype if block is None else TORCH_BLOCK_SCALES[block.name]
        self.register_buffer("scales", torch.zeros((self.out_features, groups),
                                                   dtype=scales_dtype, device=device))
        self.register_buffer("qzeros", torch.zeros(
            _packed_bytes(self.out_features * groups, wt.nbits), dtype=torch.uint8,
            device=device) if zero_point else None)
        self.register_buffer("bias", torch.zeros(self.out_features, dtype=dtype, device=device)
                             if bias else None)
        # The prepared form of the weights (tilevm.kernels.prepared_weights), made from the
        # buffers above by prepare(); not saved (a state_dict holds the dense codes).
        self.prepared_bk = 0
        self._prepared_from: tuple[tuple[int, int], ...] = ()
        for name in ("prepared_codes", "prepared_scales", "prepared_zeros"):
            self.register_buffer(name, None, persistent=False)
        # The buffers, the PreparedWeights an eager call runs them as (or None) and their
        # device (_direct_weights).
        self._direct_cache: tuple[tuple, PreparedWeights | None, Any] | None = None
        self.register_load_state_dict_post_hook(_prepare_after_loading)

    @property
    def wtype(self) -> str:
        """The weight type's name (``"u4"``, ``"f4e2m1fn"``…)."""
        return self.weight_type.name

    def extra_repr(self) -> str:
        group = self.group_size or "per channel"
        block = "" if self.scale_type is None else f", scale_dtype={self.scale_type.name}"
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, wtype={self.wtype}, group_size={group}, "
                f"zero_point={self.zero_point}{block}, dtype={self.dtype}"
                + (", deterministic=True" if self.deterministic else ""))

    def get_extra_state(self) -> dict[str, Any]:
        return {"wtype": self.wtype, "group_size": self.group_size,
                "zero_point": self.zero_point,
                "scale_dtype": None if self.scale_type is None else self.scale_type.name}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        mine = self.get_extra_state()
        if dict(state) != mine:
            raise ValueError(f"QuantLinear.load_state_dict: the state was saved with {state}, "
                             f"this layer has {mine}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x · Wᵀ + bias`` over the last dimension of ``x``."""
        original = x.dtype
        if not x.is_floating_point():
            raise ValueError(f"x: {original}; QuantLinear takes floating-point inputs")
        if original != self.dtype:
            x = x.to(self.dtype)
        if self.prepared_codes is not None:
            if not torch.compiler.is_compiling() and self._prepared_from != self._weights_state():
                self.prepare()  # the buffers changed (in place, or moved) since the last one
            if x.shape[-1] != self.in_features:
                raise ValueError(f"x: last dimension {x.shape[-1]}, the layer has "
                                 f"{self.in_features} in_features")
            weights = self._direct_weights(x)
            if weights is not None:  # what the op would run, without the dispatcher
                return _converted(run_prepared(x, weights, self.bias, self.deterministic),
                                  original)
            y = prepared_linear(x, self.prepared_codes, self.prepared_scales,
                                self.prepared_zeros, self.bias, self.wtype,
                                self._scale_type_name, self.group_size, self.prepared_bk,
                                self._padded_k, self.out_features, self.deterministic)
        else:
            y = quant_linear(x, self.qweight, self.scales, self.qzeros, self.bias, self.wtype,
                             self.group_size, self.in_features, self.deterministic)
        return _converted(y, original)

    def _direct_weights(self, x: torch.Tensor) -> PreparedWeights | None:
        """The prepared weights, when an eager call may run the op's implementation itself
        (:func:`dispatcher_adds_nothing`, the buffers plain tensors on x's device, the bias in
        x's dtype); None sends the call through the op, whose checks report what is wrong.
        Looked at again only when a buffer was replaced (prepared again, moved, converted)."""
        if not dispatcher_adds_nothing(x):
            return None
        found = self._buffers
        buffers = (found["prepared_codes"], found["prepared_scales"], found["prepared_zeros"],
                   found["bias"])
        cached = self._direct_cache
        if cached is None or not all(map(operator.is_, cached[0], buffers)):
            codes, scales, zeros, bias = buffers
            present = [t for t in buffers if t is not None]
            usable = (all(type(t) is torch.Tensor for t in present)
                      and len({t.device for t in present}) == 1
                      and (bias is None or bias.dtype is self.dtype))
            weights = PreparedWeights(
                codes, scales, zeros, self.weight_type, tv.dtype(TORCH_ACTIVATIONS[self.dtype]),
                tv.dtype(self._scale_type_name), self.group_size, self.prepared_bk,
                self.out_features, self._padded_k) if usable else None
            cached = self._direct_cache = (buffers, weights, codes.device)
        if x.device != cached[2] or x.dtype is not self.dtype:
            return None
        return cached[1]

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor],
               recurse: bool = True) -> QuantLinear:
        """Module conversions (``.to``, ``.cuda``, ``.half``, ``.bfloat16``, ``.float``…): every
        buffer moves as ``fn`` says; a conversion to float16 or bfloat16 makes that the layer's
        activation dtype (its scales, unless block-scaled, and its bias are rounded to it, and
        the weights are prepared again); one to any other dtype (``.float()``, ``.double()``)
        leaves the layer's dtypes as they are, since ``forward`` converts such inputs. Block
        scales always keep their type."""
        probe = fn(torch.empty(0, dtype=self.dtype, device=self.qweight.device))
        dtype = probe.dtype if probe.dtype in TORCH_ACTIVATIONS else self.dtype
        in_activation_dtype = [t for t in (self.bias, None if self.scale_type else self.scales)
                               if t is not None]

        def convert(t: torch.Tensor) -> torch.Tensor:
            if not t.is_floating_point():
                return fn(t)
            # Moved through an integer view of the same width, so that fn changes no bits...
            moved = fn(t.view(_SAME_WIDTH_INTEGER[t.element_size()])).view(t.dtype)
            # ...and only the activation-dtype buffers follow the new activation dtype.
            return moved.to(dtype) if any(t is a for a in in_activation_dtype) else moved

        prepared_is_current = (self.prepared_codes is not None
                               and self._prepared_from == self._weights_state())
        super()._apply(convert, recurse)
        if dtype != self.dtype:
            self.dtype = dtype
            if self.prepared_codes is not None:
                self.prepare()  # the prepared scales hold the old dtype's bits
        elif prepared_is_current:
            self._prepared_from = self._weights_state()  # moved along with the buffers
        return self

    @property
    def _padded_k(self) -> int:
        return self.qweight.shape[1] * 8 // self.weight_type.nbits

    @property
    def _scale_type_name(self) -> str:
        return TORCH_ACTIVATIONS[self.dtype] if self.scale_type is None else self.scale_type.name

    def _weights_state(self) -> tuple[tuple[int, int], ...]:
        """Where the buffers the prepared weights come from are and how often they were written
        (torch's version counters): a change means the prepared form is stale."""
        found = self._buffers
        return tuple((t.data_ptr(), t._version) for t in (found["qweight"], found["scales"],
                                                          found["qzeros"]) if t is not None)

    def prepare(self) -> None:
        """Make the prepared form of the weights from the buffers. The constructors
        ``from_linear``, ``from_gptq``, ``from_awq`` and ``load_state_dict`` do it, and an eager
        call does it again when ``qweight``, ``scales`` or ``qzeros`` changed since (written in
        place, or moved); a compiled graph does not look, so call it after changing them there.
        Calls then run the kernels on prepared weights (:mod:`tilevm.kernels.prepared_linear`):
        each lane loads its weights as one contiguous run."""
        wt, n = self.weight_type, self.out_features
        groups = self.scales.shape[1]
        codes = tv.packed(self.qweight.reshape(-1), wt, (n, self._padded_k))
        zeros = None if self.qzeros is None else tv.packed(self.qzeros, wt, (n, groups))
        with torch.no_grad():
            prepared = prepare_linear_weights(
                codes, self.scales, zeros, act=TORCH_ACTIVATIONS[self.dtype],
                group_size=self.group_size,
                device=None if self.qweight.device.type == "cuda" else "cpu")
        self.prepared_codes, self.prepared_scales = prepared.codes, prepared.scales
        self.prepared_zeros, self.prepared_bk = prepared.zeros, prepared.bk
        self._prepared_from = self._weights_state()

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_linear(cls, linear: nn.Linear, wtype: str = "u4", group_size: int | None = 128,
                    zero_point: bool = False, dtype: torch.dtype | None = None,
                    scale_dtype: Any = None) -> QuantLinear:
        """Quantize ``linear`` (see :mod:`tilevm.kernels.quantize` for the schemes: absmax
        without zero points, min-max with them, the OCP MX shared exponent for ``f8e8m0fnu``
        scales) with the DSL quantization kernel, on the device of its weight. ``dtype``
        defaults to the weight's if f16/bf16, else f16."""
        weight = linear.weight.detach()
        if dtype is None:
            dtype = weight.dtype if weight.dtype in TORCH_ACTIVATIONS else torch.float16
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None,
                    wtype=wtype, group_size=group_size, zero_point=zero_point,
                    scale_dtype=scale_dtype, dtype=dtype, device=weight.device)
        layer._quantize(weight)
        if linear.bias is not None:
            layer.bias.copy_(linear.bias.detach().to(dtype))
        layer.prepare()
        return layer

    def _quantize(self, weight: torch.Tensor) -> None:
        wt, n, groups = self.weight_type, self.out_features, self.scales.shape[1]
        kp = self.qweight.shape[1] * 8 // wt.nbits
        codes = tv.packed(self.qweight.reshape(-1), wt, (n, kp))
        zeros_bytes = (self.qzeros if self.qzeros is not None
                       else torch.zeros(4, dtype=torch.uint8, device=weight.device))
        zeros = tv.packed(zeros_bytes, wt, (n, groups) if self.qzeros is not None else (1, 1))
        on_gpu = weight.device.type == "cuda"
        step = {"bk": 16} if self.group_size % 32 else {}
        quantize_kernel(weight.float().contiguous(), codes, self.scales, zeros,
                        device=None if on_gpu else "cpu", group=self.group_size,
                        **scheme_constants(wt, self.zero_point, self.scale_type), **step)

    @classmethod
    def _from_imported(cls, imported: ImportedWeights, in_features: int, bias: Any,
                       dtype: torch.dtype) -> QuantLinear:
        n = imported.codes.shape[0]
        wt = tv.dtype(f"u{imported.bits}")
        layer = cls(in_features, n, bias is not None, wtype=wt.name,
                    group_size=imported.group_size, zero_point=True, dtype=dtype)
        kp = layer.qweight.shape[1] * 8 // wt.nbits
        groups = layer.scales.shape[1]
        codes = np.zeros((n, kp), np.int64)
        codes[:, :in_features] = imported.codes[:, :in_features]
        if imported.scales.shape[1] != groups:
            raise ValueError(f"scales: {imported.scales.shape[1]} groups, the layer has {groups}")
        layer.qweight.copy_(torch.from_numpy(
            tv.HostTensor.from_bits(codes, wt).data.reshape(n, -1)))
        layer.qzeros.copy_(torch.from_numpy(tv.HostTensor.from_bits(imported.zeros, wt).data))
        layer.scales.copy_(torch.from_numpy(np.asarray(imported.scales, np.float32)).to(dtype))
        if bias is not None:
            layer.bias.copy_(torch.as_tensor(bias).detach().to(dtype))
        layer.prepare()
        return layer

    @classmethod
    def from_gptq(cls, qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor, *,
                  bits: int, group_size: int, in_features: int | None = None,
                  bias: torch.Tensor | None = None, g_idx: torch.Tensor | None = None,
                  checkpoint_format: str = "gptq",
                  dtype: torch.dtype = torch.float16) -> QuantLinear:
        """A layer from a GPTQ checkpoint's tensors (u{bits} with zero points; see
        :mod:`tilevm.kernels.quantized_checkpoints`). Raises NotImplementedError for
        act_order checkpoints (a permuted ``g_idx``)."""
        imported = import_gptq(qweight, qzeros, scales, bits=bits, group_size=group_size,
                               in_features=in_features, g_idx=g_idx,
                               checkpoint_format=checkpoint_format)
        return cls._from_imported(imported, imported.codes.shape[1], bias, dtype)

    @classmethod
    def from_awq(cls, qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor, *,
                 group_size: int, bits: int = 4, bias: torch.Tensor | None = None,
                 dtype: torch.dtype = torch.float16) -> QuantLinear:
        """A layer from an AWQ (GEMM format) checkpoint's tensors (u4 with zero points)."""
        imported = import_awq(qweight, qzeros, scales, group_size=group_size, bits=bits)
        return cls._from_imported(imported, imported.codes.shape[1], bias, dtype)


def _converted(y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return y if y.dtype == dtype else y.to(dtype)


def _prepare_after_loading(layer: nn.Module, _incompatible_keys: Any) -> None:
    """A QuantLinear whose buffers were loaded prepares its weights again."""
    layer.prepare()
