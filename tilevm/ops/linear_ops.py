"""The low-bit-weight linear ops registered with ``torch.library``: ``tilevm::quant_linear``
(dense codes, the buffers of :class:`~tilevm.ops.quant_linear.QuantLinear`) and
``tilevm::prepared_linear`` (prepared weights, :mod:`tilevm.kernels.prepared_weights`), and
their weights as a matrix, ``tilevm::quant_weight_columns`` and
``tilevm::prepared_weight_columns`` (a range of W's columns in the activation type).

The linear ops compute ``y = x · Wᵀ + bias`` with W stored as codes of 1 to 8 bits (see
:mod:`tilevm.kernels.quant_linear` for the types and the arithmetic) through the DSL kernels:
CPU tensors on the CPU backend, CUDA tensors on the GPU (autotuned there). Each op has a fake
implementation, so ``torch.compile(fullgraph=True)`` traces it with any leading dimensions of x,
symbolic ones included; the linear ops have a backward for x and the bias (:func:`_backward`,
which makes W with the columns ops). An eager layer whose call nothing observes skips the
dispatcher (:func:`dispatcher_adds_nothing`, :func:`run_prepared`).
"""

from __future__ import annotations

from typing import Any

import torch

import tilevm as tv
from tilevm.kernels.prepared_linear import launch_prepared_linear
from tilevm.kernels.prepared_weights import PreparedWeights
from tilevm.kernels.quant_linear import launch_quant_linear, weight_dtype
from tilevm.kernels.quantize import padded_k
from tilevm.kernels.weight_columns import (
    COLUMN_ALIGNMENT,
    launch_dense_weight_columns,
    launch_prepared_weight_columns,
)

__all__ = ["BACKWARD_COLUMNS", "TORCH_ACTIVATIONS", "TORCH_BLOCK_SCALES",
           "dispatcher_adds_nothing", "prepared_linear", "prepared_weight_columns",
           "quant_linear", "quant_weight_columns", "run_prepared", "scale_groups"]

# The activation dtypes and their tilevm names.
TORCH_ACTIVATIONS = {torch.float16: "f16", torch.bfloat16: "bf16"}
# The block-scaled formats' scale types (tilevm.kernels.quant_linear.BLOCK_SCALES).
TORCH_BLOCK_SCALES = {"f8e8m0fnu": torch.float8_e8m0fnu, "f8e4m3fn": torch.float8_e4m3fn}


def scale_groups(in_features: int, group_size: int) -> int:
    """The scales per output of ``in_features`` inputs in groups of ``group_size`` (0: per
    channel, one group)."""
    return padded_k(in_features, group_size) // group_size if group_size else 1


@torch.library.custom_op("tilevm::quant_linear", mutates_args=())
def quant_linear(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
                 qzeros: torch.Tensor | None, bias: torch.Tensor | None, wtype: str,
                 group_size: int, in_features: int, deterministic: bool = False
                 ) -> torch.Tensor:
    """``x · Wᵀ + bias`` for x (…, in_features) in f16 or bf16 and W given by the buffers of
    :class:`~tilevm.ops.quant_linear.QuantLinear` (``group_size`` 0: per channel). Returns
    (…, out_features) in x's dtype. ``deterministic``: decode calls (few rows, the split-K
    kernel) reduce in a fixed order, the same bits every run. Raises ValueError naming the
    argument whose dtype, device or shape is wrong."""
    wt = weight_dtype(wtype)
    n = scales.shape[0]
    _check_operands(x, qweight, scales, qzeros, bias, wt, group_size, in_features)
    x2 = x.reshape(-1, in_features)
    if not x2.is_contiguous():
        x2 = x2.contiguous()
    y = torch.empty((x2.shape[0], n), dtype=x.dtype, device=x.device)
    if x2.shape[0] == 0 or n == 0:
        return y.reshape(*x.shape[:-1], n)
    kp = qweight.shape[1] * 8 // wt.nbits
    w = tv.packed(qweight.reshape(-1), wt, (n, kp))
    zeros = None if qzeros is None else tv.packed(qzeros, wt, (n, scales.shape[1]))
    on_gpu = x.device.type == "cuda"
    launch_quant_linear(x2, w, scales, y, group_size=group_size, zeros=zeros, bias=bias,
                        device=None if on_gpu else "cpu", tuned=on_gpu,
                        deterministic=deterministic)
    return y.reshape(*x.shape[:-1], n)


@quant_linear.register_fake
def _(x, qweight, scales, qzeros, bias, wtype, group_size, in_features, deterministic=False):
    return x.new_empty((*x.shape[:-1], scales.shape[0]))


def _prepared_linear(x: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor,
                     zeros: torch.Tensor | None, bias: torch.Tensor | None, wtype: str,
                     scale_type: str, group_size: int, bk: int, kp: int, out_features: int,
                     deterministic: bool = False) -> torch.Tensor:
    """``x · Wᵀ + bias`` on prepared weights (:class:`~tilevm.kernels.prepared_weights.
    PreparedWeights`: ``codes``, ``scales``, ``zeros`` and the parameters after them) for x
    (…, k) in f16 or bf16, k ≤ ``kp``. Returns (…, out_features) in x's dtype.
    ``deterministic`` as for :func:`quant_linear`. Raises ValueError naming the argument whose
    dtype, device or shape is wrong."""
    act = TORCH_ACTIVATIONS.get(x.dtype)
    if act is None:
        raise ValueError(f"x: f16 or bf16 activations, got {x.dtype}")
    k = x.shape[-1]
    if k > kp:
        raise ValueError(f"x: last dimension {k}, the weights have {kp} columns")
    if bias is not None and (bias.dtype != x.dtype or bias.shape != (out_features,)):
        raise ValueError(f"bias: {bias.dtype} {tuple(bias.shape)}, expected {x.dtype} "
                         f"({out_features},)")
    for name, t in (("codes", codes), ("scales", scales), ("zeros", zeros), ("bias", bias)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name}: on {t.device}, x on {x.device} (one device per call)")
    weights = PreparedWeights(codes, scales, zeros, weight_dtype(wtype), tv.dtype(act),
                              tv.dtype(scale_type), group_size, bk, out_features, kp)
    return run_prepared(x, weights, bias, deterministic)


def run_prepared(x: torch.Tensor, weights: PreparedWeights, bias: torch.Tensor | None,
                 deterministic: bool) -> torch.Tensor:
    """The product of checked operands: x (…, k) in ``weights.act``, on the weights' device."""
    k, n = x.shape[-1], weights.n
    x2 = x.reshape(-1, k)
    if not x2.is_contiguous():
        x2 = x2.contiguous()
    y = torch.empty((x2.shape[0], n), dtype=x.dtype, device=x.device)
    if x2.shape[0] and n:
        on_gpu = x.device.type == "cuda"
        launch_prepared_linear(x2, weights, y, bias=bias, device=None if on_gpu else "cpu",
                               tuned=on_gpu, deterministic=deterministic)
    return y.reshape(*x.shape[:-1], n)


prepared_linear = torch.library.custom_op("tilevm::prepared_linear", _prepared_linear,
                                          mutates_args=())


@prepared_linear.register_fake
def _(x, codes, scales, zeros, bias, wtype, scale_type, group_size, bk, kp, out_features,
      deterministic=False):
    return x.new_empty((*x.shape[:-1], out_features))


try:  # torch's own state queries (private names, stable for years)
    _TORCH_STATE = (torch._C._len_torch_dispatch_stack, torch._C._is_torch_function_mode_enabled,
                    torch._C._are_functorch_transforms_active, torch.autograd._profiler_enabled,
                    torch._C._get_tracing_state)
except AttributeError:  # a torch without one of them: every call goes through the op
    _TORCH_STATE = None


def dispatcher_adds_nothing(x: torch.Tensor) -> bool:
    """Whether the dispatcher, called on an op with ``x``, would only call the op's
    implementation: a plain tensor that needs no gradient, outside torch.compile, jit tracing,
    dispatch and function modes, functorch transforms and the profiler (all of which see the
    op). An eager layer then calls the implementation itself: the dispatcher's own cost is
    tens of microseconds per call."""
    if _TORCH_STATE is None or torch.compiler.is_compiling():  # dynamo traces nothing after
        return False
    dispatch_modes, function_modes, transforms, profiling, tracing = _TORCH_STATE
    return (type(x) is torch.Tensor and not (x.requires_grad and torch.is_grad_enabled())
            and dispatch_modes() == 0 and not function_modes() and not transforms()
            and not profiling() and tracing() is None)


@torch.library.custom_op("tilevm::quant_weight_columns", mutates_args=())
def quant_weight_columns(qweight: torch.Tensor, scales: torch.Tensor,
                         qzeros: torch.Tensor | None, wtype: str, group_size: int,
                         act: torch.dtype, start: int, stop: int) -> torch.Tensor:
    """Columns ``start…stop`` of the weights :func:`quant_linear` multiplies by, in ``act`` (f16
    or bf16: the scales' dtype unless they are block scales), bit for bit: an (out_features,
    stop − start) tensor on the weights' device. ``start`` is a multiple of
    :data:`~tilevm.kernels.weight_columns.COLUMN_ALIGNMENT`. Raises ValueError naming the
    argument that is wrong."""
    wt = weight_dtype(wtype)
    n = scales.shape[0]
    kp = qweight.shape[1] * 8 // wt.nbits
    _check_columns(act, start, stop, kp)
    if scales.dtype != act and scales.dtype not in TORCH_BLOCK_SCALES.values():
        raise ValueError(f"scales: dtype {scales.dtype}, act is {act} (they must agree, "
                         "unless the scales are a block scale type)")
    out = torch.empty((n, stop - start), dtype=act, device=qweight.device)
    if n and stop > start:
        zeros = None if qzeros is None else tv.packed(qzeros, wt, (n, scales.shape[1]))
        launch_dense_weight_columns(tv.packed(qweight.reshape(-1), wt, (n, kp)), scales, out,
                                    start, group_size=group_size, zeros=zeros,
                                    device=None if out.device.type == "cuda" else "cpu")
    return out


@quant_weight_columns.register_fake
def _(qweight, scales, qzeros, wtype, group_size, act, start, stop):
    return scales.new_empty((scales.shape[0], stop - start), dtype=act)


@torch.library.custom_op("tilevm::prepared_weight_columns", mutates_args=())
def prepared_weight_columns(codes: torch.Tensor, scales: torch.Tensor,
                            zeros: torch.Tensor | None, wtype: str, scale_type: str,
                            group_size: int, bk: int, kp: int, out_features: int,
                            act: torch.dtype, start: int, stop: int) -> torch.Tensor:
    """Columns ``start…stop`` of the weights :func:`prepared_linear` multiplies by (its weight
    operands and parameters; ``act`` the activation dtype they were prepared for), as
    :func:`quant_weight_columns`."""
    _check_columns(act, start, stop, kp)
    out = torch.empty((out_features, stop - start), dtype=act, device=codes.device)
    if out_features and stop > start:
        weights = PreparedWeights(codes, scales, zeros, weight_dtype(wtype),
                                  tv.dtype(TORCH_ACTIVATIONS[act]), tv.dtype(scale_type),
                                  group_size, bk, out_features, kp)
        launch_prepared_weight_columns(weights, out, start,
                                       device=None if out.device.type == "cuda" else "cpu")
    return out


@prepared_weight_columns.register_fake
def _(codes, scales, zeros, wtype, scale_type, group_size, bk, kp, out_features, act, start,
      stop):
    return codes.new_empty((out_features, stop - start), dtype=act)


def _check_columns(act: torch.dtype, start: int, stop: int, kp: int) -> None:
    if act not in TORCH_ACTIVATIONS:
        raise ValueError(f"act: f16 or bf16, got {act}")
    if not 0 <= start <= stop <= kp or start % COLUMN_ALIGNMENT:
        raise ValueError(f"start={start}, stop={stop}: columns of weights with {kp} columns, "
                         f"start a multiple of {COLUMN_ALIGNMENT}")


# Columns of W a backward makes at a time (a multiple of COLUMN_ALIGNMENT).
BACKWARD_COLUMNS = 1024


def _backward(ctx: Any, grad_y: torch.Tensor) -> tuple:
    """The gradients of ``x · Wᵀ + bias`` for x and the bias (the weights are constants), for
    both ops (operands ``x``, three weight tensors, ``bias``, then plain parameters):
    ``grad_y · W`` and the sum of ``grad_y`` over its rows. W is the dequantized weights in the
    activation type, exactly those the forward multiplies by (the op's ``…_weight_columns``
    counterpart), made :data:`BACKWARD_COLUMNS` columns at a time."""
    grad_x = grad_bias = None
    if ctx.needs_input_grad[0]:
        k, act = ctx.k, ctx.act
        g = grad_y.to(act)
        grad_x = g.new_empty((*g.shape[:-1], k))
        for start in range(0, k, BACKWARD_COLUMNS):
            stop = min(k, start + BACKWARD_COLUMNS)
            columns = ctx.columns(*ctx.saved_tensors, *ctx.parameters, act, start, stop)
            grad_x[..., start:stop] = g @ columns
        grad_x = grad_x.to(grad_y.dtype)
    if ctx.needs_input_grad[4]:
        grad_bias = grad_y.reshape(-1, grad_y.shape[-1]).sum(0)
    return (grad_x, None, None, None, grad_bias) + (None,) * ctx.parameter_count


def _register_backward(op: Any, columns: Any, parameters: int) -> None:
    """Give ``op`` its backward: W's columns from ``columns``, which takes the op's three weight
    tensors, its first ``parameters`` plain parameters, the activation dtype, start and stop."""
    def save(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, first, second, third, _bias, *rest = inputs
        ctx.save_for_backward(first, second, third)
        ctx.columns, ctx.parameters, ctx.parameter_count = columns, rest[:parameters], len(rest)
        ctx.k, ctx.act = x.shape[-1], x.dtype

    op.register_autograd(_backward, setup_context=save)


_register_backward(quant_linear, quant_weight_columns, 2)  # wtype, group_size
# wtype, scale_type, group_size, bk, kp, out_features
_register_backward(prepared_linear, prepared_weight_columns, 6)


def _check_operands(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
                    qzeros: torch.Tensor | None, bias: torch.Tensor | None, wt: tv.DType,
                    group_size: int, in_features: int) -> None:
    if x.dtype not in TORCH_ACTIVATIONS:
        raise ValueError(f"x: f16 or bf16 activations, got {x.dtype}")
    if x.shape[-1] != in_features:
        raise ValueError(f"x: last dimension {x.shape[-1]}, the layer has {in_features} "
                         "in_features")
    if scales.dtype != x.dtype and scales.dtype not in TORCH_BLOCK_SCALES.values():
        raise ValueError(f"scales: dtype {scales.dtype}, x is {x.dtype} (they must agree, "
                         "unless the scales are a block scale type)")
    if bias is not None and (bias.dtype != x.dtype or bias.shape != (scales.shape[0],)):
        raise ValueError(f"bias: {bias.dtype} {tuple(bias.shape)}, expected {x.dtype} "
                         f"({scales.shape[0]},)")
    if qweight.dtype != torch.uint8 or qweight.dim() != 2 or qweight.shape[0] != scales.shape[0]:
        raise ValueError(f"qweight: uint8 (out_features, bytes per row) expected, got "
                         f"{qweight.dtype} {tuple(qweight.shape)}")
    if qweight.shape[1] * 8 // wt.nbits < in_features:
        raise ValueError(f"qweight: rows of {qweight.shape[1]} bytes hold fewer than "
                         f"in_features={in_features} codes of {wt.name}")
    if scales.shape[1] != scale_groups(in_features, group_size):
        raise ValueError(f"scales: {scales.shape[1]} groups, expected "
                         f"{scale_groups(in_features, group_size)}")
    if qzeros is not None and qzeros.numel() * 8 < scales.numel() * wt.nbits:
        raise ValueError("qzeros: too few bytes for one zero point per scale")
    for name, t in (("qweight", qweight), ("scales", scales), ("qzeros", qzeros),
                    ("bias", bias)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name}: on {t.device}, x on {x.device} (one device per call)")
