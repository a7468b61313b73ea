"""QuantLinear, quantize_model and the tilevm::quant_linear op (issue 14, items 2 and 3).

Oracles: the layer's buffers are unpacked and decoded in the test from the formats' bit fields
(tests/kernels/quant_reference.py, no tilevm), the quantization is recomputed in numpy float32
from the scheme's definition, and outputs are held to the accuracy rule (DESIGN §8) against
float64 on the same dequantized weights. N = 136 and K = 224 are multiples of no tile; every
kernel specialization (weight type, activation type, group size, zero points, bias) is compiled
once and reused for every M, which varies at run time.
"""

from __future__ import annotations

import copy
import itertools
import os
import random
import sys
import zlib

import ml_dtypes
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from tilevm.ops import QuantLinear, dequantize, quantize_model
from tilevm.ops.linear_ops import (
    prepared_linear,
    prepared_weight_columns,
    quant_linear,
    quant_weight_columns,
)

# The references shared with tests/kernels (no tilevm in them).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "kernels"))
from quant_reference import (
    accuracy_bound,
    act_round,
    bits_of,
    dequantize_reference,
    is_float,
    linear_references,
    quantize_reference,
    unpack,
)

N, K = 136, 224
WEIGHT_TYPES = ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8",
                "i2", "i3", "i4", "i5", "i6", "i7", "i8",
                "f3e1m1", "f4e2m1fn", "f5e2m2", "f5e3m1", "f6e2m3fn", "f6e3m2fn", "f7e3m3",
                "f8e4m3fn", "f8e5m2"]
INTEGER_TYPES = [t for t in WEIGHT_TYPES if not is_float(t)]
FACTORS = {
    "group": [32, 128, 0],  # 0: per channel
    "zero_point": [False, True],
    "act": ["f16", "bf16"],
    "m": [1, 3, 16, 100],
    "bias": [False, True],
}
TORCH_ACT = {"f16": torch.float16, "bf16": torch.bfloat16}


def pairwise_rows(factors: dict[str, list], seed: int) -> list[dict]:
    """A covering array of strength 2: every pair of values of two factors is in some row.
    Greedy: each new row is the best of 64 random candidates, each seeded with an uncovered
    pair, by the number of uncovered pairs it covers."""
    rng = random.Random(seed)
    names = list(factors)
    uncovered = {(a, va, b, vb) for a, b in itertools.combinations(names, 2)
                 for va in factors[a] for vb in factors[b]}
    rows = []
    while uncovered:
        best, gain = None, -1
        for _ in range(64):
            a, va, b, vb = rng.choice(sorted(uncovered, key=repr))
            row = {name: rng.choice(values) for name, values in factors.items()}
            row[a], row[b] = va, vb
            covered = sum((x, row[x], y, row[y]) in uncovered
                          for x, y in itertools.combinations(names, 2))
            if covered > gain:
                best, gain = row, covered
        rows.append(best)
        uncovered -= {(x, best[x], y, best[y]) for x, y in itertools.combinations(names, 2)}
    return rows


def cases(seed: int = 14) -> list[dict]:
    """The covering array's rows, each with a weight type (an integer type where the row has
    zero points), then rows for the types not yet used, until every weight type has a row."""
    rng = random.Random(seed)
    rows = pairwise_rows(FACTORS, seed)
    unused = list(WEIGHT_TYPES)
    rng.shuffle(unused)
    for row in rows:
        pool = [t for t in unused if not (row["zero_point"] and is_float(t))] or (
            INTEGER_TYPES if row["zero_point"] else WEIGHT_TYPES)
        row["wtype"] = pool[0]
        if pool[0] in unused:
            unused.remove(pool[0])
    for wtype in unused:
        row = {name: rng.choice(values) for name, values in FACTORS.items()}
        row["zero_point"] = row["zero_point"] and not is_float(wtype)
        rows.append({**row, "wtype": wtype})
    return rows


CASES = cases()


def test_the_covering_array_covers_every_pair_and_every_weight_type():
    for a, b in itertools.combinations(FACTORS, 2):
        seen = {(row[a], row[b]) for row in CASES}
        assert seen == set(itertools.product(FACTORS[a], FACTORS[b])), (a, b)
    assert {row["wtype"] for row in CASES} == set(WEIGHT_TYPES)
    assert not any(row["zero_point"] and is_float(row["wtype"]) for row in CASES)


def float_linear(n: int, k: int, bias: bool, seed: int) -> nn.Linear:
    torch.manual_seed(seed)
    linear = nn.Linear(k, n, bias=bias)
    with torch.no_grad():  # weights of a few magnitudes, one all-zero group
        linear.weight.mul_(torch.logspace(-1, 1, k).repeat(n, 1)[torch.randperm(n)])
        linear.weight[3, :32] = 0
    return linear


def layer_weights(layer: QuantLinear) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Codes, scales and zero codes of a layer, unpacked from its buffers in the test."""
    bits = bits_of(layer.wtype)
    n = layer.out_features
    kp = layer.qweight.shape[1] * 8 // bits
    codes = unpack(layer.qweight.numpy(), bits, (n, kp))
    scales = layer.scales.float().numpy()
    zeros = (unpack(layer.qzeros.numpy(), bits, scales.shape)
             if layer.qzeros is not None else None)
    return codes, scales, zeros


def to_numpy(t: torch.Tensor, act: str) -> np.ndarray:
    if act == "bf16":
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def check_case(row: dict, n: int = N, k: int = K) -> None:
    wtype, group, zp, act, m = (row["wtype"], row["group"], row["zero_point"], row["act"],
                                row["m"])
    scale_type = row.get("scale_type")
    linear = float_linear(n, k, row["bias"],
                          seed=zlib.crc32(repr((wtype, group, zp, act)).encode()))
    layer = QuantLinear.from_linear(linear, wtype, group or None, zero_point=zp,
                                    dtype=TORCH_ACT[act], scale_dtype=scale_type)
    # The quantization, recomputed from the scheme's definition.
    codes, scales, zeros = layer_weights(layer)
    want_codes, want_scales, want_zeros = quantize_reference(
        linear.weight.detach().numpy(), wtype, group, zp, act, scale_type)
    np.testing.assert_array_equal(scales, want_scales.astype(np.float32))
    w = dequantize_reference(codes, scales, zeros, wtype, group, k)
    want_w = dequantize_reference(want_codes, want_scales, want_zeros, wtype, group, k)
    np.testing.assert_array_equal(w, want_w)  # values: ±0 codes are equal
    rng = np.random.default_rng(m)
    x = torch.from_numpy(rng.standard_normal((m, k)).astype(np.float32)).to(TORCH_ACT[act])
    assert_product_within_the_rule(layer, x, act, row)


def assert_product_within_the_rule(layer: QuantLinear, x: torch.Tensor, act: str,
                                   context: object) -> None:
    """The layer's product against float64 on its weights decoded in the test from its
    buffers."""
    codes, scales, zeros = layer_weights(layer)
    w = dequantize_reference(codes, scales, zeros, layer.wtype, layer.group_size,
                             layer.in_features)
    y = layer(x)
    assert y.dtype == TORCH_ACT[act] and y.shape == (x.shape[0], layer.out_features)
    bias = to_numpy(layer.bias, act) if layer.bias is not None else None
    ref, base = linear_references(to_numpy(x, act), w, bias, act)
    error = float(np.max(np.abs(y.float().numpy().astype(np.float64) - ref)))
    assert error <= accuracy_bound(ref, base, act), (context, error,
                                                     accuracy_bound(ref, base, act))


@pytest.mark.parametrize("row", CASES, ids=lambda r: "-".join(f"{v}" for v in r.values()))
def test_quant_linear_matches_float64_on_the_covering_array(row):
    check_case(row)


def test_k_not_a_multiple_of_the_group_is_padded():
    check_case({"wtype": "u4", "group": 128, "zero_point": True, "act": "f16", "m": 5,
                "bias": True}, n=40, k=200)


def full_product() -> list[dict]:
    rows = []
    types = itertools.cycle(WEIGHT_TYPES)
    for group, zp, act, bias in itertools.product(FACTORS["group"], FACTORS["zero_point"],
                                                  FACTORS["act"], FACTORS["bias"]):
        wtype = next(types)
        while zp and is_float(wtype):
            wtype = next(types)
        rows += [{"wtype": wtype, "group": group, "zero_point": zp, "act": act, "m": m,
                  "bias": bias} for m in FACTORS["m"]]
    return rows


@pytest.mark.parametrize("wtype, scale_type, group", [
    ("f4e2m1fn", "e8m0", 32), ("f6e2m3fn", "e8m0", 32), ("f6e3m2fn", "e8m0", 32),
    ("f8e4m3fn", "e8m0", 32), ("f4e2m1fn", "e4m3", 16)])
def test_block_scaled_formats_mx_and_nvfp4(wtype, scale_type, group):
    check_case({"wtype": wtype, "group": group, "zero_point": False, "act": "bf16", "m": 7,
                "bias": True, "scale_type": scale_type})


@pytest.mark.slow  # 96 cases in 24 kernel specializations: about 1 min of JIT in one test
def test_quant_linear_on_the_full_product_of_the_factors():
    for row in full_product():
        check_case(row)


def test_leading_dimensions_and_float32_inputs():
    layer = QuantLinear.from_linear(float_linear(N, K, True, 0), "u4", 32)
    x = torch.randn(2, 3, 5, K)
    y = layer(x)
    assert y.shape == (2, 3, 5, N) and y.dtype == torch.float32
    flat = layer(x.reshape(30, K).half())
    assert torch.equal(y.reshape(30, N).half(), flat)
    assert layer(torch.zeros(0, K, dtype=torch.float16)).shape == (0, N)
    with pytest.raises(ValueError, match=r"x: torch\.int32; QuantLinear takes floating"):
        layer(torch.ones(2, K, dtype=torch.int32))


def test_module_conversions_follow_f16_and_bf16_and_keep_other_dtypes():
    """``.to(torch.bfloat16)`` and ``.half()`` make a layer compute in that dtype (its scales
    and bias rounded by torch, its codes untouched, its weights prepared again);
    ``.float()`` and ``.double()`` leave its dtypes alone (inputs are converted); block
    scales keep their type and bits through every conversion."""
    layer = QuantLinear.from_linear(float_linear(N, K, True, 6), "u4", 32, zero_point=True)
    x = torch.randn(5, K)
    as_bf16 = copy.deepcopy(layer).to(torch.bfloat16)
    assert as_bf16.dtype == torch.bfloat16
    assert torch.equal(as_bf16.scales, layer.scales.to(torch.bfloat16))
    assert torch.equal(as_bf16.bias, layer.bias.to(torch.bfloat16))
    assert torch.equal(as_bf16.qweight, layer.qweight)
    assert torch.equal(as_bf16.qzeros, layer.qzeros)
    assert_product_within_the_rule(as_bf16, x.bfloat16(), "bf16", "to(bfloat16)")
    assert_product_within_the_rule(copy.deepcopy(as_bf16).half(), x.half(), "f16", "half()")
    for convert in (nn.Module.float, nn.Module.double):
        kept = convert(copy.deepcopy(layer))
        assert kept.dtype == torch.float16 and torch.equal(kept.scales, layer.scales)
        assert torch.equal(kept(x), layer(x.half()).float())
    mx = QuantLinear.from_linear(float_linear(N, K, False, 7), "f4e2m1", 32,
                                 scale_dtype="e8m0", dtype=torch.bfloat16)
    scale_bits = mx.scales.view(torch.uint8).clone()
    for convert, act in ((nn.Module.half, "f16"), (nn.Module.float, "f16"),
                         (nn.Module.bfloat16, "bf16")):
        convert(mx)
        assert mx.scales.dtype == torch.float8_e8m0fnu
        assert torch.equal(mx.scales.view(torch.uint8), scale_bits)
        assert_product_within_the_rule(mx, x.to(TORCH_ACT[act]), act, convert)


def test_a_move_keeps_the_prepared_weights(monkeypatch):
    """A conversion that moves the buffers but keeps their dtypes (here into shared memory)
    moves the prepared weights with them: the next call does not prepare again."""
    layer = QuantLinear.from_linear(float_linear(N, K, True, 8), "u3", 64)
    x = torch.randn(4, K, dtype=torch.float16)
    before = layer(x)
    address = layer.qweight.data_ptr()
    layer.share_memory()
    assert layer.qweight.data_ptr() != address and layer.prepared_codes.is_shared()
    monkeypatch.setattr(QuantLinear, "prepare", lambda self: pytest.fail("prepared again"))
    assert torch.equal(layer(x), before)


def test_state_dict_round_trips():
    layer = QuantLinear.from_linear(float_linear(N, K, True, 1), "i3", 64, zero_point=True,
                                    dtype=torch.bfloat16)
    fresh = QuantLinear(K, N, bias=True, wtype="i3", group_size=64, zero_point=True,
                        dtype=torch.bfloat16, deterministic=True)
    assert fresh.prepared_codes is None  # nothing to prepare before weights arrive
    fresh.load_state_dict(layer.state_dict())
    assert "prepared_codes" not in layer.state_dict()  # derived from the saved buffers
    assert torch.equal(fresh.prepared_codes, layer.prepared_codes)  # prepared on loading
    layer.deterministic = True  # 7 rows: split-K, whose sum order is the blocks' otherwise
    x = torch.randn(7, K, dtype=torch.bfloat16)
    assert torch.equal(fresh(x), layer(x))
    other = QuantLinear(K, N, bias=True, wtype="u3", group_size=64, zero_point=True,
                        dtype=torch.bfloat16)
    with pytest.raises(Exception, match="wtype"):
        other.load_state_dict(layer.state_dict())


class RecordedOps(TorchDispatchMode):
    """The names of the ops dispatched while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func))
        return func(*args, **kwargs or {})


def test_eager_calls_skip_the_dispatcher_only_where_it_adds_nothing(monkeypatch):
    """An eager call on a plain tensor runs the op's implementation without the dispatcher
    (the same bits as the op); a call that needs a gradient, or under a dispatch mode, goes
    through the op: the mode sees it, and autograd records its backward."""
    import tilevm.ops.quant_linear as layer_module

    layer = QuantLinear.from_linear(float_linear(N, K, True, 9), "u4", 32)
    layer.deterministic = True  # bit-for-bit comparisons at 3 rows (split-K)
    x = torch.randn(3, K, dtype=torch.float16)
    buffers = (layer.prepared_codes, layer.prepared_scales, layer.prepared_zeros, layer.bias,
               layer.wtype, "f16", layer.group_size, layer.prepared_bk, layer._padded_k,
               layer.out_features, True)
    through_the_op = torch.ops.tilevm.prepared_linear(x, *buffers)
    with monkeypatch.context() as patch:
        patch.setattr(layer_module, "prepared_linear",
                      lambda *a: pytest.fail("an eager call went through the op"))
        assert torch.equal(layer(x), through_the_op)
        with torch.inference_mode():
            assert torch.equal(layer(x), through_the_op)
    with RecordedOps() as mode:
        assert torch.equal(layer(x), through_the_op)
    assert "tilevm.prepared_linear.default" in mode.names
    y = layer(x.clone().requires_grad_())  # through the op, which records its backward
    assert y.grad_fn is not None and torch.equal(y.detach(), through_the_op)


def test_gradients_reach_x_and_the_bias(monkeypatch):
    """Backward through a layer (training adapters over frozen low-bit weights): x's gradient is
    grad_y · W on the layer's weights decoded in the test, within the accuracy rule, with any
    leading dimensions, W made 128 columns at a time (224 = 128 + 96); the op on the dense
    codes gives the same bits; a bias passed to the op that needs a gradient gets grad_y summed
    over the rows; torch.compile's joint graph gives the eager gradient's bits; opcheck passes
    with inputs that need gradients."""
    import tilevm.ops.linear_ops as ops_module

    monkeypatch.setattr(ops_module, "BACKWARD_COLUMNS", 128)
    layer = QuantLinear.from_linear(float_linear(N, K, True, 10), "i4", 32, zero_point=True,
                                    dtype=torch.bfloat16)
    codes, scales, zeros = layer_weights(layer)
    w = dequantize_reference(codes, scales, zeros, "i4", 32, K)  # (N, K), float64
    x = torch.randn(2, 3, K, dtype=torch.bfloat16, requires_grad=True)
    grad_y = torch.randn(2, 3, N, dtype=torch.bfloat16)
    layer(x).backward(grad_y)
    ref, base = linear_references(to_numpy(grad_y.reshape(6, N), "bf16"), w.T.copy(), None,
                                  "bf16")
    error = float(np.max(np.abs(x.grad.reshape(6, K).float().numpy().astype(np.float64) - ref)))
    assert error <= accuracy_bound(ref, base, "bf16")

    # The op on the dense codes (a layer not loaded yet) makes the same W: the same bits.
    dense_x = x.detach().clone().requires_grad_()
    dense = (layer.qweight, layer.scales, layer.qzeros, None, "i4", 32, K)
    quant_linear(dense_x, *dense).backward(grad_y)
    assert torch.equal(dense_x.grad, x.grad)
    torch.library.opcheck(quant_linear, (x.detach().clone().requires_grad_(), *dense))

    compiled_x = x.detach().clone().requires_grad_()
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    compiled(compiled_x).backward(grad_y)
    assert torch.equal(compiled_x.grad, x.grad)

    bias = layer.bias.detach().clone().requires_grad_()
    operands = (layer.prepared_codes, layer.prepared_scales, layer.prepared_zeros, bias,
                layer.wtype, "bf16", layer.group_size, layer.prepared_bk, layer._padded_k,
                layer.out_features, True)
    prepared_linear(x.detach(), *operands).backward(grad_y)
    want = grad_y.double().sum((0, 1))
    assert float((bias.grad.double() - want).abs().max()) <= 2**-7 * float(want.abs().max())
    torch.library.opcheck(prepared_linear, (x.detach().clone().requires_grad_(), *operands))


def test_the_weight_column_ops_give_the_weights_the_layer_multiplies_by():
    """``tilevm::quant_weight_columns`` and ``tilevm::prepared_weight_columns`` (the backward's
    W): the layer's weights decoded in the test, rounded once to bf16, bit for bit, from both
    forms of the weights; opcheck passes; a misaligned start or an activation dtype that is not
    f16/bf16 is an error naming it."""
    layer = QuantLinear.from_linear(float_linear(N, K, True, 11), "u4", 32, zero_point=True,
                                    dtype=torch.bfloat16)
    codes, scales, zeros = layer_weights(layer)
    want = torch.from_numpy(act_round(dequantize_reference(codes, scales, zeros, "u4", 32, K),
                                      "bf16").astype(np.float64))
    dense = (layer.qweight, layer.scales, layer.qzeros, "u4", 32, torch.bfloat16)
    prepared = (layer.prepared_codes, layer.prepared_scales, layer.prepared_zeros, "u4", "bf16",
                32, layer.prepared_bk, layer._padded_k, N, torch.bfloat16)
    for start, stop in ((0, 128), (128, K)):
        assert torch.equal(quant_weight_columns(*dense, start, stop).double(),
                           want[:, start:stop])
        assert torch.equal(prepared_weight_columns(*prepared, start, stop).double(),
                           want[:, start:stop])
    torch.library.opcheck(quant_weight_columns, (*dense, 128, K))
    torch.library.opcheck(prepared_weight_columns, (*prepared, 0, 128))
    with pytest.raises(ValueError, match="start=64, stop=128: columns of weights with 224 "
                                         "columns, start a multiple of 128"):
        quant_weight_columns(*dense, 64, 128)
    with pytest.raises(ValueError, match=r"act: f16 or bf16, got torch\.float32"):
        prepared_weight_columns(*prepared[:-1], torch.float32, 0, 128)
    with pytest.raises(ValueError, match=r"scales: dtype torch\.bfloat16, act is torch\.float16"):
        quant_weight_columns(*dense[:-1], torch.float16, 0, 128)


def test_layers_run_on_prepared_weights(monkeypatch):
    """A quantized layer prepares its weights (16-byte runs per lane for u4 in groups of 128;
    NVFP4's groups of 16 in steps of 16) and calls the prepared-weight kernels; a layer built
    but not loaded runs the kernels of its dense codes."""
    import tilevm.ops.linear_ops as ops_module

    calls = []
    for name in ("launch_prepared_linear", "launch_quant_linear"):
        original = getattr(ops_module, name)
        monkeypatch.setattr(ops_module, name, lambda *a, _name=name, _f=original, **k: (
            calls.append(_name), _f(*a, **k))[1])
    u4 = QuantLinear.from_linear(float_linear(N, K, False, 3), "u4", 128)
    assert u4.prepared_bk == 32 and u4.prepared_codes.shape == (5, 256 // 32, 32 * 4)
    nvfp4 = QuantLinear.from_linear(float_linear(N, K, False, 3), "f4e2m1", 16,
                                    scale_dtype="f8e4m3fn")
    assert nvfp4.prepared_bk == 16
    empty = QuantLinear(K, N, wtype="u4", group_size=32)
    x = torch.randn(2, K, dtype=torch.float16)
    u4(x), nvfp4(x), empty(x)
    assert calls == ["launch_prepared_linear"] * 2 + ["launch_quant_linear"]


def test_weights_written_in_place_are_prepared_again():
    """An eager call after ``qweight`` (or the scales) changed in place prepares again: the
    result follows the new codes (checked against the layer's own float64 weights)."""
    layer = QuantLinear.from_linear(float_linear(N, K, True, 5), "u4", 32)
    x = torch.randn(3, K, dtype=torch.float16)
    before = layer(x)
    layer.qweight.copy_(torch.flip(layer.qweight, [0]))  # the rows in reverse order
    after = layer(x)
    want = x.double() @ dequantize(layer).T + layer.bias.double()
    assert not torch.equal(before, after)
    assert float((after.double() - want).abs().max()) <= 2e-3 * float(want.abs().max())


def test_constructor_errors_name_the_argument():
    with pytest.raises(ValueError, match="zero_point"):
        QuantLinear(K, N, wtype="f4e2m1", zero_point=True)
    with pytest.raises(ValueError, match="group_size=48"):
        QuantLinear(K, N, wtype="u4", group_size=48)
    with pytest.raises(ValueError, match="wtype=f8e8m0fnu"):
        QuantLinear(K, N, wtype="e8m0")
    layer = QuantLinear(K, N, wtype="u4", group_size=32)
    with pytest.raises(ValueError, match="in_features"):
        layer(torch.zeros(2, K + 1, dtype=torch.float16))


# -- whole models --------------------------------------------------------------------------------


class Block(nn.Module):
    """A pre-norm transformer block: attention with 4 heads, then a GELU MLP."""

    def __init__(self, d: int = 96, heads: int = 4, hidden: int = 136) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d, bias=False)
        self.up, self.down = nn.Linear(d, hidden), nn.Linear(hidden, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, -1).unbind(2)
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / (d // self.heads) ** 0.5
        attention = torch.einsum("bhqk,bkhe->bqhe", scores.softmax(-1), v).reshape(b, t, d)
        x = x + self.out(attention)
        return x + self.down(nn.functional.gelu(self.up(self.norm2(x))))


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(224, 136), nn.ReLU(), nn.Linear(136, 72), nn.Tanh(),
                         nn.Linear(72, 10))


def run_with(model: nn.Module, weights: dict[str, np.ndarray], act: str | None,
             x: torch.Tensor) -> torch.Tensor:
    """``model`` (float, its nn.Linear replaced by ``weights``) in float64 (``act=None``), or
    with each linear computed as the base of the accuracy rule: inputs, weights and bias
    rounded to ``act``, f32 accumulation, the result rounded to ``act``."""

    def linear(name: str, layer: QuantLinear):
        w = torch.from_numpy(weights[name])
        b = layer.bias.double() if layer.bias is not None else None

        def forward(inp: torch.Tensor) -> torch.Tensor:
            if act is None:
                return nn.functional.linear(inp, w, b)
            dt = TORCH_ACT[act]
            out = nn.functional.linear(inp.to(dt).float(), w.to(dt).float(),
                                       None if b is None else b.to(dt).float())
            return out.to(dt).to(inp.dtype)

        return forward

    if act is None:
        model = copy.deepcopy(model).double()
    originals = {}
    for name, module in model.named_modules():
        if isinstance(module, QuantLinear):
            originals[name] = module.forward
            module.forward = linear(name, module)
    try:
        return model(x.double() if act is None else x)
    finally:
        for name, forward in originals.items():
            model.get_submodule(name).forward = forward


@pytest.mark.parametrize("make, shape, act, wtype, group", [
    (mlp, (2, 5, 224), "f16", "u4", 32),
    (Block, (2, 9, 96), "bf16", "f4e2m1fn", 0),
])
def test_quantize_model_stays_within_the_accuracy_rule(make, shape, act, wtype, group):
    torch.manual_seed(0)
    model = make().eval()
    quantize_model(model, wtype, group or None, dtype=TORCH_ACT[act], skip=["out"])
    linears = {n: m for n, m in model.named_modules() if isinstance(m, QuantLinear)}
    assert all(not isinstance(m, nn.Linear) or n == "out" for n, m in model.named_modules())
    weights = {}
    for name, layer in linears.items():
        codes, scales, zeros = layer_weights(layer)
        weights[name] = dequantize_reference(codes, scales, zeros, wtype, group,
                                             layer.in_features)
    x = torch.randn(*shape)
    with torch.no_grad():
        ours = model(x).double()
        ref = run_with(model, weights, None, x)
        base = run_with(model, weights, act, x).double()
    error = float((ours - ref).abs().max())
    assert error <= accuracy_bound(ref.numpy(), base.numpy(), act)


class Tied(nn.Module):
    """One linear under three names (weights shared by two call sites, as tied layers are), a
    second under two, and an attention whose ``out_proj`` is an ``nn.Linear`` subclass."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Linear(96, 96)
        self.again = self.shared
        self.stack = nn.Sequential(self.shared, nn.ReLU())
        self.head = nn.Linear(96, 40)
        self.head_alias = self.head
        self.attention = nn.MultiheadAttention(96, 4, batch_first=True)


def test_quantize_model_replaces_a_shared_linear_under_every_name():
    model = Tied()
    attention_out = model.attention.out_proj
    quantize_model(model, "u4", 32, skip=["head_alias"])
    assert isinstance(model.shared, QuantLinear)
    assert model.again is model.shared and model.stack[0] is model.shared
    # A name skipped keeps the linear float under its other names too.
    assert type(model.head) is nn.Linear and model.head_alias is model.head
    assert model.attention.out_proj is attention_out  # a subclass: left alone


def test_quantize_model_reports_progress_and_replaces_nothing_when_interrupted(capsys):
    seen = []
    model = mlp()
    quantize_model(model, "u4", 32, progress=lambda *a: seen.append(a))
    assert seen == [("quantize", done, 3) for done in (1, 2, 3)]
    quantize_model(mlp(), "u4", 32, progress=True)
    err = capsys.readouterr().err
    assert "tilevm quantize" in err and err.endswith("] 3/3\n")

    def interrupt(stage: str, done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt
    model = mlp()
    with pytest.raises(KeyboardInterrupt):
        quantize_model(model, "u4", 32, progress=interrupt)
    assert all(type(m) is nn.Linear for m in model if not isinstance(m, (nn.ReLU, nn.Tanh)))


# -- torch.library --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def layer() -> QuantLinear:
    # deterministic: the compiled and the eager calls are compared bit for bit at decode sizes
    layer = QuantLinear.from_linear(float_linear(N, K, True, 2), "u4", 32, zero_point=True)
    layer.deterministic = True
    return layer


def test_opcheck_passes(layer):
    buffers = (layer.qweight, layer.scales, layer.qzeros, layer.bias, layer.wtype,
               layer.group_size, layer.in_features)
    torch.library.opcheck(quant_linear, (torch.randn(3, K, dtype=torch.float16), *buffers))
    torch.library.opcheck(quant_linear, (torch.randn(2, 4, K, dtype=torch.float16),
                                         layer.qweight, layer.scales, None, None, *buffers[4:]))
    prepared = (layer.prepared_codes, layer.prepared_scales, layer.prepared_zeros, layer.bias,
                layer.wtype, "f16", layer.group_size, layer.prepared_bk,
                layer.qweight.shape[1] * 2, N)
    torch.library.opcheck(prepared_linear, (torch.randn(3, K, dtype=torch.float16), *prepared))
    torch.library.opcheck(prepared_linear, (torch.randn(2, 4, K, dtype=torch.float16),
                                            *prepared[:3], None, *prepared[4:]))


def test_torch_compile_traces_the_op_with_a_dynamic_m(layer):
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()

    def model(x: torch.Tensor) -> torch.Tensor:
        return torch.relu(layer(x)) * 2

    compiled = torch.compile(model, fullgraph=True, backend="aot_eager", dynamic=True)
    for m in (3, 16, 100):
        x = torch.randn(m, K, dtype=torch.float16)
        assert torch.equal(compiled(x), model(x))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1  # one graph, M symbolic


def test_inductor_compiles_the_op_with_a_dynamic_m(layer):
    """The default backend (Inductor) too: it generates code around the op (the relu and the
    scale) and calls the op as an extern kernel, one graph for every M."""
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()

    def model(x: torch.Tensor) -> torch.Tensor:
        return torch.relu(layer(x)) * 2

    compiled = torch.compile(model, fullgraph=True, dynamic=True)
    for m in (3, 16, 100):
        x = torch.randn(m, K, dtype=torch.float16)
        assert torch.equal(compiled(x), model(x))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


def test_a_deterministic_layer_asks_for_the_in_order_reduction(monkeypatch):
    """``QuantLinear(deterministic=True)`` reaches the split-K kernel's in-order mode through
    the registered op (the kernel's mode is tested in tests/kernels/test_quant_linear_split_k.py)
    and gives the same result as the default."""
    import tilevm.ops.linear_ops as ops_module

    seen = []
    launch = ops_module.launch_prepared_linear  # the layer's weights are prepared
    monkeypatch.setattr(ops_module, "launch_prepared_linear",
                        lambda *a, **k: (seen.append(k["deterministic"]), launch(*a, **k))[1])
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 40)
    fixed = QuantLinear.from_linear(linear, wtype="u4", group_size=32)
    fixed.deterministic = True
    free = QuantLinear.from_linear(linear, wtype="u4", group_size=32)
    x = torch.randn(3, 64, dtype=torch.float16)
    assert torch.allclose(fixed(x).float(), free(x).float(), atol=2e-3)
    assert seen == [True, False] and "deterministic=True" in repr(fixed)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_decode_step_is_captured_in_a_cuda_graph():
    """After its first call (tuning, compiling, workspaces), a decode call allocates nothing on
    the host side and does not synchronize: it is captured in a CUDA graph, and replaying the
    graph on new inputs gives what an eager call gives (DESIGN §7)."""
    layer = QuantLinear.from_linear(float_linear(N, K, True, 4).cuda(), "u4", 32)
    layer.deterministic = True  # the replay and the eager call are compared bit for bit
    static_x = torch.randn(1, K, dtype=torch.float16, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        layer(static_x)  # the first call, outside the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = layer(static_x)
    for seed in range(3):
        static_x.copy_(torch.randn(1, K, dtype=torch.float16, device="cuda",
                                   generator=torch.Generator("cuda").manual_seed(seed)))
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(static_y, layer(static_x))


def test_device_stand_ins_are_made_once_and_plain_tensors_where_torch_has_the_type():
    """Absent operands on a device take one stand-in per device, type and rank (a call
    allocates nothing after its first), a plain torch tensor where torch has the type whole (the
    fast path of a repeated GPU call takes those; sub-byte types take packed bytes, which only a
    GPU can hold). The meta device stands in for a GPU: the rule is the same on any device but
    the CPU, where the stand-in is a host tensor."""
    import tilevm as tv
    from tilevm.kernels.quant_linear import stand_in_like

    y = torch.empty((2, 8), dtype=torch.float16, device="meta")
    zeros = stand_in_like(y, tv.u32, 3)
    assert type(zeros) is torch.Tensor and zeros.dtype == torch.uint32
    assert zeros.shape == (1, 1, 1) and zeros.device.type == "meta"
    assert stand_in_like(y, tv.u32, 3) is zeros
    bias = stand_in_like(y, tv.bf16, 1)
    assert type(bias) is torch.Tensor and bias.dtype == torch.bfloat16 and bias.shape == (1,)
    assert isinstance(stand_in_like(torch.empty(2), tv.u32, 3), tv.HostTensor)
