"""The public face of the types: names, attributes, properties, counterparts."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tilevm as tv
from tilevm.ir.dtypes import all_dtypes, from_numpy_dtype


def test_required_types_exist_as_attributes():
    for name in ["u1", "u4", "u8", "u32", "i2", "i8", "i32", "u64", "i64", "f4e2m1fn",
                 "f6e2m3fn", "f6e3m2fn", "f8e4m3fn", "f8e5m2", "f8e8m0fnu", "f16", "bf16", "f32",
                 "f64", "f4e2m1", "f6e3m2", "f8e4m3", "f5e2m2", "f7e3m3", "f3e1m1"]:
        assert getattr(tv, name) is tv.dtype(name)
    # Every allfinite split of 3..7 bits with e, m >= 1 exists.
    for n in range(3, 8):
        for e in range(1, n - 1):
            dt = tv.dtype(f"f{n}e{e}m{n - 1 - e}")
            assert dt.nbits == n and dt.exponent_bits == e and dt.bias == 2 ** (e - 1) - 1


def test_properties():
    assert tv.f8e4m3fn.max == 448.0 and tv.f8e4m3fn.min == -448.0
    assert tv.f8e5m2.max == 57344.0 and tv.f8e5m2.has_inf and tv.f8e5m2.has_nan
    assert tv.f4e2m1.max == 6.0 and not tv.f4e2m1.has_nan and not tv.f4e2m1.has_inf
    assert tv.f6e2m3.max == 7.5 and tv.f6e3m2.max == 28.0
    assert tv.f8e8m0fnu.min == 2.0**-127 and tv.f8e8m0fnu.max == 2.0**127
    assert not tv.f8e8m0fnu.is_signed and tv.f8e4m3fn.is_signed and tv.i4.is_signed
    assert not tv.f8e4m3fnuz.has_negative_zero
    assert tv.f16.max == 65504.0 and tv.bf16.max == float(ml_dtypes.finfo(ml_dtypes.bfloat16).max)
    assert tv.f32.max == float(np.finfo(np.float32).max)
    assert tv.f16.unit_roundoff == 2.0**-11 and tv.bf16.unit_roundoff == 2.0**-8
    assert tv.f8e4m3fn.specials == "fn" and tv.f16.specials == "ieee" and tv.u4.specials is None
    assert tv.u4.is_subbyte and not tv.u8.is_subbyte
    assert tv.u3.storage_dtype == np.uint8 and tv.u12.storage_dtype == np.uint16


def test_counterparts_agree_with_their_libraries():
    for dt in all_dtypes():
        if dt.ml_dtype is not None:
            assert dt.ml_dtype.itemsize * 8 >= dt.nbits
            assert from_numpy_dtype(dt.ml_dtype) is dt or dt.name in ("u1",)
    assert tv.f16.ptx == ".f16" and tv.f8e4m3fn.ptx == ".e4m3" and tv.f4e2m1.ptx == ".e2m1"
    assert tv.u4.ptx == ".u4" and tv.i4.ptx == ".s4"
    import torch

    assert tv.bf16.torch_dtype == torch.bfloat16 and tv.u4.torch_dtype == torch.uint4
    assert tv.f4e2m1.torch_dtype == torch.float4_e2m1fn_x2
    assert tv.f6e3m2.torch_dtype is None


def test_dtypes_are_singletons_and_pickle():
    import pickle

    assert pickle.loads(pickle.dumps(tv.f6e3m2)) is tv.f6e3m2
    assert repr(tv.u4) == "tilevm.u4" and str(tv.bf16) == "bf16"
    assert tv.dtype(np.dtype(np.float16)) is tv.f16
    assert tv.dtype(ml_dtypes.bfloat16) is tv.bf16


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown dtype 'f9'"):
        tv.dtype("f9")
    with pytest.raises(TypeError, match="no tilevm counterpart"):
        from_numpy_dtype(np.dtype(np.complex64))
