"""Weight preparation in the DSL (``tilevm.kernels.prepared_weights``) against the numpy reference
of the prepared format (``tilevm.kernels.weight_preparation.prepare_weights``): the same bytes,
for every weight type, both activation types where their cast orders differ, and shapes that are
not whole chunks. Zero points are checked against their values converted by numpy/ml_dtypes,
and ``default_chunk_k`` against its definition. Each (weight type, activation type, bk) is one
specialization of the codes kernel, used by one test.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tilevm as tv
from tilevm.kernels.prepared_layouts import chunk_layout, value_layout
from tilevm.kernels.prepared_weights import (
    PreparedWeights,
    default_chunk_k,
    prepare_linear_weights,
    prepare_values_kernel,
)
from tilevm.kernels.weight_preparation import prepare_weights

N = 70  # rows of W: two whole chunks of 32 and a partial one
CHUNKS = 3

# Every weight type with the chunk width it is tested at: all three widths, 128 (the default of
# odd widths in groups of 128) where a chunk's conversion compiles fast enough for the suite.
CHUNK_K = {"u1": 32, "u2": 64, "u3": 128, "u4": 32, "u5": 64, "u6": 64, "u7": 32, "u8": 128,
           "i2": 64, "i3": 32, "i4": 64, "i5": 32, "i6": 64, "i7": 32, "i8": 128,
           "f4e2m1fn": 32, "f6e3m2fn": 64, "f8e4m3fn": 128, "f3e1m1": 32, "f5e2m2": 64}
WEIGHT_TYPES = list(CHUNK_K)
WIDTHS = (32, 64, 128)


def _differs(name: str, bk: int) -> bool:
    """Whether the fast-cast orders of ``name`` into f16 and into bf16 differ."""
    layout = chunk_layout(bk)
    return tv.fast_cast_layout(layout, name, "f16") != tv.fast_cast_layout(layout, name, "bf16")


def _cases() -> list[tuple[str, str, int]]:
    """(weight type, activation type, bk): every type once, both activation types where the
    order differs, the activation types alternating elsewhere."""
    cases = []
    for index, (name, bk) in enumerate(CHUNK_K.items()):
        acts = ("f16", "bf16") if _differs(name, bk) else (("f16", "bf16")[index % 2],)
        cases += [(name, act, bk) for act in acts]
    return cases


CASES = _cases()


def test_the_cases_cover_an_order_that_depends_on_the_activation_type():
    assert any(act == "bf16" and _differs(name, bk) for name, act, bk in CASES)


def _padded(values: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.zeros((rows, cols), np.int64)
    out[:values.shape[0], :values.shape[1]] = values
    return out


def _expected_codes(codes: np.ndarray, name: str, act: str, bk: int) -> np.ndarray:
    kp_padded = -(-codes.shape[1] // bk) * bk
    layout = tv.fast_cast_layout(chunk_layout(bk), name, act)
    return prepare_weights(_padded(codes, CHUNKS * 32, kp_padded), name, layout).reshape(
        CHUNKS, kp_padded // bk, -1)


def _expected_values(bits: np.ndarray, name: str) -> np.ndarray:
    """The reference bytes of a column block of values given as their bit patterns."""
    return prepare_weights(_padded(bits, CHUNKS * 32, bits.shape[1]), name,
                           value_layout(32, 1)).reshape(CHUNKS, bits.shape[1], -1)


def _host_codes(codes: np.ndarray, dt: tv.DType):
    """Codes as a kernel takes them: a numpy array for 8-bit types (ml_dtypes for floats), a
    HostTensor of packed bits below."""
    if dt.nbits < 8:
        return tv.HostTensor.from_bits(codes, dt)
    return codes.astype(np.uint8).view({"float": dt.ml_dtype, "int": np.int8}.get(dt.kind,
                                                                                 np.uint8))


@pytest.mark.parametrize(("name", "act", "bk"), CASES)
def test_prepared_codes_are_the_reference_bytes(name, act, bk):
    dt = tv.dtype(name)
    rng = np.random.default_rng(dt.nbits * 7 + bk)
    kp = bk + 48  # not a multiple of bk: the last chunk column is padded with code 0
    codes = rng.integers(0, 1 << dt.nbits, size=(N, kp))
    scales = rng.uniform(0.5, 2.0, size=(N, 1)).astype(tv.dtype(act).ml_dtype)
    prepared = prepare_linear_weights(_host_codes(codes, dt), scales, act=act, group_size=0,
                                      bk=bk)
    assert isinstance(prepared.codes, np.ndarray) and prepared.codes.dtype == np.uint32
    np.testing.assert_array_equal(prepared.codes, _expected_codes(codes, name, act, bk))
    assert (prepared.wtype, prepared.act, prepared.scale_type) == (dt, tv.dtype(act),
                                                                   tv.dtype(act))
    assert (prepared.n, prepared.kp, prepared.bk, prepared.group_size) == (N, kp, bk, 0)
    assert (prepared.chunks, prepared.steps, prepared.groups) == (CHUNKS, -(-kp // bk), 1)
    assert prepared.zeros is None


def _scale_bits(name: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Bit patterns of finite scales of ``name`` (signs, subnormals and large values included)."""
    dt = tv.dtype(name)
    if name == "f8e8m0fnu":
        return rng.integers(0, 255, size=shape)  # 255 is its NaN
    values = rng.standard_normal(shape) * 2.0 ** rng.integers(-20, 10, size=shape)
    ml = values.astype(dt.ml_dtype)
    return ml.view(np.uint8 if dt.nbits == 8 else np.uint16).astype(np.int64)


@pytest.mark.parametrize("name", ["f16", "bf16", "f8e8m0fnu", "f8e4m3fn"])
def test_prepared_scales_are_the_reference_bytes(name):
    dt = tv.dtype(name)
    rng = np.random.default_rng(dt.nbits + len(name))
    bits = _scale_bits(name, (N, 3), rng)
    scales = bits.astype(np.uint8 if dt.nbits == 8 else np.uint16).view(dt.ml_dtype)
    words = 8 * (4 * dt.nbits // 32)
    out = np.empty((CHUNKS, 3, words), np.uint32)
    prepare_values_kernel(scales, out, value_type=dt)
    np.testing.assert_array_equal(out, _expected_values(bits, name))


def test_mx_scales_through_the_host_function():
    rng = np.random.default_rng(3)
    kp = 96
    codes = rng.integers(0, 16, size=(N, kp))
    bits = _scale_bits("f8e8m0fnu", (N, 3), rng)
    scales = bits.astype(np.uint8).view(ml_dtypes.float8_e8m0fnu)
    prepared = prepare_linear_weights(tv.HostTensor.from_bits(codes, "f4e2m1fn"), scales,
                                      act="bf16", group_size=32)
    assert prepared.bk == 32 and prepared.block_scaled
    np.testing.assert_array_equal(prepared.scales, _expected_values(bits, "f8e8m0fnu"))
    np.testing.assert_array_equal(prepared.codes, _expected_codes(codes, "f4e2m1fn", "bf16", 32))


def _zero_values(bits: np.ndarray, name: str) -> np.ndarray:
    """The integers the zero points' bit patterns stand for (two's complement for ``i``)."""
    nbits = int(name[1:])
    return bits - (bits >= 1 << (nbits - 1)) * (1 << nbits) if name[0] == "i" else bits


@pytest.mark.parametrize("act", ["f16", "bf16"])
@pytest.mark.parametrize("name", ["u4", "i4"])
def test_zero_points_become_activation_values(name, act):
    rng = np.random.default_rng(len(act) + ord(name[0]))
    group, kp = 64, 160  # three groups, the last partial
    codes = rng.integers(0, 16, size=(N, kp))
    zero_bits = rng.integers(0, 16, size=(N, 3))
    zero_bits[0, :2] = (0, 15)  # both ends of the range
    scales = rng.uniform(0.5, 2.0, size=(N, 3)).astype(tv.dtype(act).ml_dtype)
    prepared = prepare_linear_weights(
        tv.HostTensor.from_bits(codes, name), scales, tv.HostTensor.from_bits(zero_bits, name),
        act=act, group_size=group)
    as_act = _zero_values(zero_bits, name).astype(np.float64).astype(
        np.float16 if act == "f16" else ml_dtypes.bfloat16)
    np.testing.assert_array_equal(prepared.zeros,
                                  _expected_values(as_act.view(np.uint16).astype(np.int64), act))
    scale_bits = scales.view(np.uint16).astype(np.int64)
    np.testing.assert_array_equal(prepared.scales, _expected_values(scale_bits, act))
    assert prepared.zeros.shape == (CHUNKS, 3, 16) and prepared.groups == 3


def test_the_interpreter_and_the_cpu_backend_give_the_reference_bytes():
    # (Every call on the default device in this suite runs on both and is compared by
    # tests/conftest.py; here each device is named.)
    rng = np.random.default_rng(11)
    codes = rng.integers(0, 16, size=(40, 64))
    zero_bits = rng.integers(0, 16, size=(40, 2))
    scales = rng.uniform(0.5, 2.0, size=(40, 2)).astype(ml_dtypes.bfloat16)
    args = (tv.HostTensor.from_bits(codes, "u4"), scales, tv.HostTensor.from_bits(zero_bits, "u4"))
    for device in ("interp", "cpu"):
        got = prepare_linear_weights(*args, act="bf16", group_size=32, device=device)
        np.testing.assert_array_equal(got.codes, prepare_weights(
            _padded(codes, 64, 64), "u4", tv.fast_cast_layout(chunk_layout(32), "u4", "bf16")
        ).reshape(2, 2, -1))
        zero_values = zero_bits.astype(ml_dtypes.bfloat16).view(np.uint16)
        np.testing.assert_array_equal(got.zeros, prepare_weights(
            _padded(zero_values, 64, 2), "bf16", value_layout(32, 1)).reshape(2, 2, -1))


def test_torch_inputs_give_torch_outputs():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 16, size=(N, 64))
    zero_bits = rng.integers(0, 16, size=(N, 2))
    host = tv.HostTensor.from_bits(codes, "u4")
    w = tv.packed(torch.from_numpy(host.data.copy()), "u4", host.shape)
    zero_host = tv.HostTensor.from_bits(zero_bits, "u4")
    zeros = tv.packed(torch.from_numpy(zero_host.data.copy()), "u4", zero_host.shape)
    scales = torch.from_numpy(rng.uniform(0.5, 2.0, size=(N, 2)).astype(np.float32)).to(
        torch.bfloat16)
    prepared = prepare_linear_weights(w, scales, zeros, act=tv.bf16, group_size=32)
    for tensor in (prepared.codes, prepared.scales, prepared.zeros):
        assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.uint32
    np.testing.assert_array_equal(prepared.codes.numpy(), _expected_codes(codes, "u4", "bf16", 32))
    scale_bits = scales.view(torch.int16).numpy().view(np.uint16).astype(np.int64)
    np.testing.assert_array_equal(prepared.scales.numpy(), _expected_values(scale_bits, "bf16"))
    zero_values = zero_bits.astype(ml_dtypes.bfloat16).view(np.uint16).astype(np.int64)
    np.testing.assert_array_equal(prepared.zeros.numpy(), _expected_values(zero_values, "bf16"))


def test_default_chunk_k_follows_its_definition():
    # Known values: u4 per 128 fills a 16-byte vector at bk = 32 (32·4/8 bytes); u3 needs
    # bk = 128 (48 bytes); u3 in groups of 64 never does (12, 24 bytes): the largest, 64.
    assert default_chunk_k("u4", 128) == 32
    assert default_chunk_k("u3", 128) == 128
    assert default_chunk_k("u3", 64) == 64
    assert default_chunk_k("u1", 0) == 128
    for name in WEIGHT_TYPES:
        nbits = tv.dtype(name).nbits
        for group in (0, 32, 64, 96, 128, 256, 384):
            dividing = [bk for bk in WIDTHS if group == 0 or group % bk == 0]
            lane_bytes = {bk: 32 * bk * nbits / 8 / 32 for bk in dividing}
            vectors = [bk for bk in dividing if lane_bytes[bk] % 16 == 0]
            expected = min(vectors) if vectors else max(dividing)
            assert default_chunk_k(tv.dtype(name), group) == expected, (name, group)


def _good_inputs() -> dict:
    rng = np.random.default_rng(0)
    return {"w": tv.HostTensor.from_bits(rng.integers(0, 16, size=(N, 64)), "u4"),
            "scales": np.ones((N, 2), np.float16),
            "zeros": tv.HostTensor.from_bits(np.full((N, 2), 8), "u4"),
            "act": "f16", "group_size": 32}


BAD_INPUTS = [
    ({"act": "f32"}, "act=f32"),
    ({"act": "half-ish"}, "act=half-ish"),
    ({"w": np.zeros((N, 64), np.float16)}, "w: f16 codes: weights are integers"),
    ({"w": tv.HostTensor.empty((2, N, 64), "u4")}, "w: the codes are a matrix"),
    ({"w": [[1, 2]]}, "w: expected a tensor"),
    ({"scales": np.ones((N + 1, 2), np.float16)}, "scales: expected shape (70, 2)"),
    ({"scales": np.ones((N, 3), np.float16)}, "scales: expected shape (70, 2)"),
    ({"scales": np.ones((N, 2), np.float32)}, "scales: f32 scales"),
    ({"scales": np.ones((N, 2), ml_dtypes.bfloat16)}, "scales: bf16 scales with f16"),
    ({"scales": np.ones((N, 2), ml_dtypes.float8_e8m0fnu)}, "f8e8m0fnu scales"),
    ({"w": tv.HostTensor.empty((N, 64), "f4e2m1fn"), "act": "bf16",
      "scales": np.ones((N, 2), ml_dtypes.bfloat16)}, "zeros: f4e2m1fn weights have no zero"),
    ({"zeros": tv.HostTensor.empty((N, 2), "u8")}, "zeros: zero points are of the weights'"),
    ({"zeros": tv.HostTensor.empty((N, 1), "u4")}, "zeros: expected the scales' shape"),
    ({"bk": 48}, "bk=48"),
    ({"bk": 64}, "bk=64 does not divide group_size=32"),
    ({"group_size": -32}, "group_size=-32"),
    ({"w": tv.HostTensor.empty((N, 64), "u4"), "zeros": None, "group_size": 8,
      "scales": np.ones((N, 8), np.float16)}, "group_size=8: no chunk width"),
]


@pytest.mark.parametrize(("change", "message"), BAD_INPUTS)
def test_bad_inputs_are_named(change, message):
    with pytest.raises(ValueError) as raised:
        prepare_linear_weights(**{**_good_inputs(), **change})
    assert message in str(raised.value)


def test_default_chunk_k_names_a_group_no_width_divides():
    with pytest.raises(ValueError, match="group_size=40"):
        default_chunk_k("u4", 40)


def test_groups_of_16_take_chunks_16_wide():
    # NVFP4's groups of 16: the only width dividing them is one m16n8k16 step.
    assert default_chunk_k("f4e2m1fn", 16) == 16


def test_prepared_weights_are_frozen():
    prepared = PreparedWeights(None, None, None, tv.u4, tv.f16, tv.f16, 128, 32, 70, 256)
    with pytest.raises(AttributeError):
        prepared.bk = 64  # type: ignore[misc]
    assert (prepared.chunks, prepared.steps, prepared.kp_padded, prepared.groups) == (3, 8, 256, 2)
    assert (prepared.code_words, prepared.scale_words, prepared.zero_words) == (4, 2, 2)


def test_inputs_on_different_devices_are_named():
    torch = pytest.importorskip("torch")
    inputs = _good_inputs()
    inputs["scales"] = torch.empty((N, 2), dtype=torch.float16, device="meta")
    with pytest.raises(ValueError, match="w and scales: the inputs are on different devices"):
        prepare_linear_weights(**inputs)
