"""HostTensor: packed host data of any type, views, and conversion from and to torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm import HostTensor


def element_bits(buf: np.ndarray, bit_offset: int, nbits: int) -> int:
    """The n-bit field at a bit offset, read from the buffer as one little-endian integer."""
    return (int.from_bytes(bytes(buf), "little") >> bit_offset) & ((1 << nbits) - 1)


def test_rows_need_not_start_on_a_byte_boundary():
    values = np.arange(15).reshape(3, 5) % 8
    t = HostTensor.from_numpy(values, tv.u3)
    assert t.data.size == (15 * 3 + 7) // 8 == 6
    # Row 1 starts at element 5, bit 15: inside byte 1.
    for (i, j), v in np.ndenumerate(values):
        assert element_bits(t.data, (i * 5 + j) * 3, 3) == v
    np.testing.assert_array_equal(t.to_numpy(), values)


@pytest.mark.parametrize("name", ["u1", "u3", "i4", "u7", "f4e2m1fn", "f6e3m2fn", "f5e2m2",
                                  "f8e4m3fn", "bf16", "f16", "f32", "u12", "i64"])
def test_round_trip_through_numpy(name):
    dt = tv.dtype(name)
    rng = np.random.default_rng(len(name))
    bits = rng.integers(0, 2 ** min(dt.nbits, 62), size=(4, 7), dtype=np.uint64)
    if dt.has_nan:  # NaN codes do not survive decode/encode as the same pattern
        bits = np.where(np.isnan(dt.decode(bits)), 0, bits)
    t = HostTensor.from_bits(bits, dt)
    np.testing.assert_array_equal(t.bits(), bits)
    again = HostTensor.from_numpy(t.to_numpy(), dt)
    np.testing.assert_array_equal(again.bits(), bits)


def test_views_share_the_buffer_and_follow_strides():
    values = np.arange(24).reshape(4, 6) % 16
    t = HostTensor.from_numpy(values, tv.u4)
    np.testing.assert_array_equal(t.T.to_numpy(), values.T)
    np.testing.assert_array_equal(t[1:3, ::2].to_numpy(), values[1:3, ::2])
    np.testing.assert_array_equal(t[2].to_numpy(), values[2])
    np.testing.assert_array_equal(t[:, ::-1].to_numpy(), values[:, ::-1])
    view = t[1:3, 1:4]
    view.copy_(np.full((2, 3), 15))
    expected = values.copy()
    expected[1:3, 1:4] = 15
    np.testing.assert_array_equal(t.to_numpy(), expected)  # written through the view


def test_from_numpy_keeps_ml_dtypes_bits():
    import ml_dtypes

    x = np.array([1.5, -0.0, 448.0], dtype=ml_dtypes.float8_e4m3fn)
    t = HostTensor.from_numpy(x)
    assert t.dtype is tv.f8e4m3fn
    np.testing.assert_array_equal(t.bits(), x.view(np.uint8))


@pytest.mark.parametrize("ml_name", ["float4_e2m1fn", "float6_e3m2fn", "int4", "uint2", "int2"])
def test_from_numpy_keeps_subbyte_ml_dtypes_bits(ml_name):
    import ml_dtypes

    np_type = getattr(ml_dtypes, ml_name)
    dt = tv.dtype(np.dtype(np_type))
    x = dt.decode(np.arange(2**dt.nbits)).astype(np_type)  # every value of the type
    t = HostTensor.from_numpy(x)
    assert t.dtype is dt
    np.testing.assert_array_equal(t.bits(), np.arange(2**dt.nbits))


def test_encode_accepts_ml_dtypes_arrays():
    import ml_dtypes

    x = np.array([1.5, -2.25, 3e38], dtype=ml_dtypes.bfloat16)
    np.testing.assert_array_equal(tv.f32.encode(x), x.astype(np.float32).view(np.uint32))
    assert tv.i8.encode(np.array([-3, 7], dtype=ml_dtypes.int4)).tolist() == [253, 7]


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="reach outside"):
        HostTensor(np.zeros(1, np.uint8), tv.u4, (3,))
    with pytest.raises(TypeError, match="uint8 buffer"):
        HostTensor(np.zeros(4, np.int32), tv.u4, (3,))
    with pytest.raises(ValueError, match="2 strides for shape"):
        HostTensor(np.zeros(4, np.uint8), tv.u4, (3,), strides=(1, 1))
    with pytest.raises(TypeError, match="torch has no dtype for f6e3m2fn"):
        HostTensor.empty((2,), tv.f6e3m2).to_torch()


@pytest.mark.parametrize("torch_name, tv_name", [
    ("float8_e4m3fn", "f8e4m3fn"), ("float8_e5m2", "f8e5m2"), ("float8_e8m0fnu", "f8e8m0fnu"),
    ("bfloat16", "bf16"), ("float16", "f16"), ("float32", "f32"), ("int8", "i8"),
    ("uint8", "u8"), ("int16", "i16"), ("int64", "i64")])
def test_torch_round_trip(torch_name, tv_name):
    t = torch.linspace(-3, 3, 12).reshape(3, 4)
    if tv_name == "f8e8m0fnu":
        t = t.abs() + 0.5
    t = t.to(getattr(torch, torch_name))
    h = HostTensor.from_torch(t)
    assert h.dtype is tv.dtype(tv_name) and h.shape == (3, 4)
    np.testing.assert_array_equal(h.to_numpy(), t.double().numpy())
    back = h.to_torch()
    assert back.dtype == t.dtype and torch.equal(back.view(torch.uint8), t.view(torch.uint8))


def test_torch_subbyte_integers_are_one_per_byte():
    t = torch.tensor([[1, 2, 15], [0, 7, 9]], dtype=torch.uint8).view(torch.uint4)
    h = HostTensor.from_torch(t)
    assert h.dtype is tv.u4 and h.data.size == 3  # packed: 6 nibbles
    np.testing.assert_array_equal(h.to_numpy(), [[1, 2, 15], [0, 7, 9]])
    assert torch.equal(h.to_torch().view(torch.uint8), t.view(torch.uint8))


def test_torch_fp4_pairs_unpack_low_nibble_first():
    # 0x21: low nibble 1 (0.5) is element 0, high nibble 2 (1.0) element 1; 0xF7: 6.0, -6.0.
    t = torch.tensor([[0x21, 0xF7]], dtype=torch.uint8).view(torch.float4_e2m1fn_x2)
    h = HostTensor.from_torch(t)
    assert h.dtype is tv.f4e2m1fn and h.shape == (1, 4)
    np.testing.assert_array_equal(h.to_numpy(), [[0.5, 1.0, 6.0, -6.0]])
    assert torch.equal(h.to_torch().view(torch.uint8), t.view(torch.uint8))
