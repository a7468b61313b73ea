"""The decode variant of the quantized linear kernel (issue 14, item 1): the K loop split over
blocks whose f32 partials meet in a workspace (red.global.add.f32, or one slot per split summed
in order: the deterministic mode), the last block to arrive finishing the tile.

Called with the default device, each kernel also runs on the interpreter and, through the suite's
autouse fixture, on the CPU backend (within the bound of float atomics, DESIGN §3; the
deterministic mode bit for bit) and compiles for sm_80 and sm_90 with no spills. Results are
checked against float64 on weights dequantized by the test's own decoder (quant_reference.py)
under the accuracy rule."""

from __future__ import annotations

import numpy as np
import pytest
from quant_reference import accuracy_bound, dequantize_reference, linear_references, unpack

from tilevm.backend.interp import run
from tilevm.frontend.arguments import bind_arguments
from tilevm.kernels.quant_linear import quant_linear_call, quant_linear_split_k
from tilevm.kernels.quantize import quantize_weights

N, K = 136, 224


def _problem(wtype: str, group: int, zero_point: bool, scale_dtype: str | None, m: int,
             seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    weights = (rng.standard_normal((N, K)) * 0.1).astype(np.float32)
    q = quantize_weights(weights, wtype, group, zero_point=zero_point, scale_dtype=scale_dtype)
    bits = q.wtype.nbits
    kp = q.codes.shape[1]
    codes = unpack(q.codes.data, bits, (N, kp))
    zeros = None if q.zeros is None else unpack(q.zeros.data, bits, q.zeros.shape)
    w = dequantize_reference(codes, np.asarray(q.scales), zeros, wtype, group, K)
    x = rng.standard_normal((m, K)).astype(np.float16)
    bias = rng.standard_normal(N).astype(np.float16)
    return q, x, bias, w


@pytest.mark.parametrize("wtype, group, zero_point, scale_dtype, m, split, deterministic", [
    ("u4", 32, False, None, 1, 2, False),
    ("u4", 128, True, None, 16, 3, True),
    ("i3", 32, True, None, 3, 4, False),
    ("f4e2m1fn", 32, False, "f8e8m0fnu", 5, 3, True),
])
def test_split_k_matches_float64_under_the_accuracy_rule(wtype, group, zero_point, scale_dtype,
                                                          m, split, deterministic):
    q, x, bias, w = _problem(wtype, group, zero_point, scale_dtype, m, seed=split)
    y = np.zeros((m, N), np.float16)
    args, constants = quant_linear_call(x, q.codes, q.scales, y, group_size=group,
                                        zeros=q.zeros, bias=bias)
    quant_linear_split_k(*args, split=split, deterministic=deterministic, **constants)
    ref, base = linear_references(x, w, bias, "f16")
    error = float(np.max(np.abs(y.astype(np.float64) - ref)))
    assert 0 < error <= accuracy_bound(ref, base, "f16")


def test_the_deterministic_mode_gives_the_same_bits_whatever_the_block_order():
    """The slots are summed in split order, so the order the blocks run in (the interpreter's
    forward, reversed and shuffled orders, the CPU backend's threads) changes nothing; the
    atomic mode's last block is the last to arrive, so its sum order follows the blocks'."""
    q, x, bias, _ = _problem("u4", 32, False, None, 4, seed=7)
    outputs = []
    for order in ("forward", "reverse", 3):
        y = np.zeros((4, N), np.float16)
        args, constants = quant_linear_call(x, q.codes, q.scales, y, group_size=32, bias=bias)
        constants = quant_linear_split_k._bind_dtype_variables(args, constants)
        kernel = quant_linear_split_k.ir(split=3, deterministic=True, **constants)
        bound = bind_arguments(kernel, args)
        run(kernel, bound.tensors, bound.scalars, bound.dims, block_order=order)
        outputs.append(bound.tensors["y"].bits())
    y = np.zeros((4, N), np.float16)
    args, constants = quant_linear_call(x, q.codes, q.scales, y, group_size=32, bias=bias)
    quant_linear_split_k(*args, device="cpu", split=3, deterministic=True, **constants)
    outputs.append(y.view(np.uint16))
    assert all(np.array_equal(outputs[0], other) for other in outputs[1:])


def test_decode_calls_take_the_split_k_variant_and_it_tunes(monkeypatch):
    """``variant="auto"`` sends at most DECODE_ROWS rows to split-K and more to the prefill
    kernel; the tuned split-K kernel chooses (here, without a GPU, by the heuristic) and runs."""
    import tilevm.kernels.quant_linear as ql

    q, x, bias, w = _problem("u4", 32, False, None, 20, seed=11)
    taken = []
    for name, (kernel, tuned, defaults) in ql.VARIANTS.items():
        monkeypatch.setitem(ql.VARIANTS, name, (lambda *a, _o=kernel, _n=name, **c: (
            taken.append(_n), _o(*a, **c))[1], tuned, defaults))
    for rows in (ql.DECODE_ROWS, ql.DECODE_ROWS + 1):
        y = np.zeros((rows, N), np.float16)
        ql.launch_quant_linear(x[:rows], q.codes, q.scales, y, group_size=32, device="cpu")
    assert taken == ["split_k", "prefill"]
    with pytest.raises(ValueError, match="variant='bogus': 'auto', 'general', 'split_k'"):
        ql.launch_quant_linear(x, q.codes, q.scales, y, group_size=32, variant="bogus")
    y = np.zeros((3, N), np.float16)
    ql.launch_quant_linear(x[:3], q.codes, q.scales, y, group_size=32, bias=bias, tuned=True,
                           device="cpu")
    assert ql.quant_linear_split_k_tuned.last_choice.source == "heuristic"
    assert ql.quant_linear_split_k_tuned.last_choice.config["split"] in (2, 4, 8)
    ref, base = linear_references(x[:3], w, bias, "f16")
    assert np.max(np.abs(y.astype(np.float64) - ref)) <= accuracy_bound(ref, base, "f16")
