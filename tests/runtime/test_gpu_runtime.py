"""The GPU runtime without a GPU: argument checks (through the shared binding code and fake device
arrays), the compiled-kernel artifact (files, checksum, grid, parameters against the CUDA
signature NVRTC compiled) and launches recorded by a fake driver device."""

from __future__ import annotations

import ctypes
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from example_loader import load_example

import tilevm as tv
from tilevm import f16, f32, i32
from tilevm.backend.interp import launch_grid
from tilevm.frontend import device_tensors
from tilevm.frontend.arguments import bind_arguments, call_device
from tilevm.runtime import artifact as artifact_module
from tilevm.runtime import cuda_driver
from tilevm.runtime.artifact import ArtifactError, KernelArtifact, artifact_of, build_artifact

sys.path.insert(0, str(Path(__file__).parent))
from fake_gpu import FakeCudaArray, FakeDevice, fake_pointer_device


@tv.kernel
def scale_add(x: tv.Global[f32, "n"], out: tv.Global[f32, "n"], alpha: tv.Scalar[f32],
              *, block: tv.Const = 256):
    tv.launch(grid=tv.cdiv(n, block), warps=2)
    start = tv.block_idx() * block
    tv.store(out, tv.load(x, (start,), (block,)) * alpha, (start,))


@tv.kernel
def counts(x: tv.Global[i32, "n"], out: tv.Global[i32, "n"], *, block: tv.Const = 128):
    tv.launch(grid=(tv.cdiv(n, block), 2), warps=4)
    i, s = tv.block_idx()
    total = tv.workspace((n,), i32)  # zero-filled
    tv.atomic_add(total, tv.load(x, (i * block,), (block,)), (i * block,))
    if s == 1:
        tv.store(out, tv.load(total, (i * block,), (block,)), (i * block,))


@tv.kernel
def three_workspaces(x: tv.Global[i32, "n"], out: tv.Global[i32, "n"], *, block: tv.Const = 128):
    tv.launch(grid=tv.cdiv(n, block), warps=4)
    i = tv.block_idx()
    scratch = tv.workspace((n,), i32, zeroed=False)
    counters = tv.workspace((3,), i32)
    sums = tv.workspace((n, 2), f16)
    tv.store(scratch, tv.load(x, (i * block,), (block,)), (i * block,))
    tv.atomic_add(counters, tv.full((3,), 1, i32), (0,))
    tv.store(sums, tv.zeros((block, 2), f16), (i * block, 0))
    tv.store(out, tv.load(scratch, (i * block,), (block,)), (i * block,))


@pytest.fixture
def fake_gpu(monkeypatch):
    """GPU 0 (and 1) as fake devices; fake arrays' pointers resolve to their devices."""
    devices = {0: FakeDevice(0), 1: FakeDevice(1)}
    monkeypatch.setattr(cuda_driver, "cuda_device", lambda index=0: devices[index])
    monkeypatch.setattr(device_tensors, "pointer_device",
                        fake_pointer_device({0x7E0000000000: 1}))
    return devices


# -- where a call runs, and the argument checks ------------------------------------------------


@pytest.mark.skipif(cuda_driver.gpu_available(), reason="this machine has a GPU")
def test_a_call_on_gpu_arrays_without_a_gpu_says_there_is_no_cuda_device():
    x, out = FakeCudaArray((300,), np.float32), FakeCudaArray((300,), np.float32)
    with pytest.raises(tv.NoCudaDevice, match=r"^no CUDA device"):
        scale_add(x, out, 2.0)
    with pytest.raises(tv.NoCudaDevice, match=r"^no CUDA device"):
        tv.DeviceArray.empty((4,), np.float32)


def test_the_device_follows_the_arguments():
    ir = scale_add.ir()
    host = np.zeros(8, np.float32)
    gpu = FakeCudaArray((8,), np.float32)
    assert call_device(ir, (host, host, 1.0), "cpu") == "cpu"
    assert call_device(ir, (gpu, gpu, 1.0), "cpu") == "cuda"
    with pytest.raises(TypeError, match="argument 'out' is on host but argument 'x' is on "
                                        "cuda:0"):
        call_device(ir, (gpu, host, 1.0), "cpu")


def test_gpu_arguments_are_checked_and_errors_name_the_argument(fake_gpu):
    ir = scale_add.ir()
    x = FakeCudaArray((300,), np.float32)
    good = bind_arguments(ir, (x, FakeCudaArray((300,), np.float32, 0x7F0000100000), 2.0),
                          "cuda")
    assert good.dims == {"n": 300} and good.tensors["out"].data_ptr == 0x7F0000100000
    cases = [
        ((x, FakeCudaArray((300,), np.float16), 2.0), TypeError,
         "argument 'out': expected f32 data, got f16"),
        ((x, FakeCudaArray((300, 2), np.float32), 2.0), ValueError,
         "argument 'out': expected 1 dimensions"),
        ((x, FakeCudaArray((299,), np.float32), 2.0), ValueError,
         "argument 'out': dimension 'n' is 299 here but 300 from argument 'x'"),
        ((x, FakeCudaArray((300,), np.float32, 0x7F0000000002), 2.0), ValueError,
         "argument 'out': address 0x7f0000000002 is not aligned to its 4-byte elements"),
        ((x, FakeCudaArray((300,), np.float32, 0x7E0000000000), 2.0), TypeError,
         "argument 'out' is on cuda:1, the other tensors on cuda:0"),
        ((x, np.zeros(300, np.float32), 2.0), TypeError,
         "argument 'out': a host tensor, but the call runs on a GPU"),
        ((x, x, "two"), TypeError, "argument 'alpha': expected a f32 number"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=re.escape(message)):
            bind_arguments(ir, args, "cuda")
    with pytest.raises(TypeError, match="argument 'x': a cuda:0 tensor; device='interp'"):
        bind_arguments(ir, (x, x, 1.0), "host")


def test_byte_strides_of_the_cuda_array_interface_become_element_strides(fake_gpu):
    t = device_tensors.device_tensor("w", FakeCudaArray((4, 6), np.float16, strides=(32, 2)))
    assert (t.shape, t.strides, t.dtype) == ((4, 6), (16, 1), tv.f16)
    with pytest.raises(ValueError, match="argument 'w': byte strides"):
        device_tensors.device_tensor("w", FakeCudaArray((4, 6), np.float16, strides=(33, 2)))


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", device_tensors._DLTensor), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p)]


class _FakeDlpackArray:
    """A DLPack producer "on GPU 1": a DLManagedTensor written by hand from dlpack.h's layout."""

    def __init__(self, shape, strides, code, bits, address):
        self.shape = (ctypes.c_int64 * len(shape))(*shape)
        self.strides = (ctypes.c_int64 * len(strides))(*strides)
        t = device_tensors._DLTensor(address, device_tensors._DLDevice(2, 1), len(shape),
                                     device_tensors._DLDataType(code, bits, 1), self.shape,
                                     self.strides, 64)
        self.managed = _DLManagedTensor(t, None, None)

    def __dlpack_device__(self):
        return (2, 1)

    def __dlpack__(self, stream=None):
        new = ctypes.pythonapi.PyCapsule_New
        new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p,
                                                       ctypes.c_void_p]
        return new(ctypes.addressof(self.managed), b"dltensor", None)


def test_a_dlpack_tensor_is_read_from_its_capsule():
    arr = _FakeDlpackArray((3, 5), (10, 2), 4, 16, 0x7D0000000000)  # bf16, strided
    assert device_tensors.argument_device(arr) == "cuda:1"
    t = device_tensors.device_tensor("k", arr)
    assert (t.data_ptr, t.dtype, t.shape, t.strides, t.device) == (
        0x7D0000000000 + 64, tv.bf16, (3, 5), (10, 2), 1)
    with pytest.raises(TypeError, match="argument 'k': DLPack type code 5"):
        device_tensors.device_tensor("k", _FakeDlpackArray((3,), (1,), 5, 64, 0x10))


def test_packed_wraps_host_bytes_as_a_host_tensor_and_device_bytes_as_a_device_tensor(
        fake_gpu):
    codes = np.arange(30) % 8
    reference = tv.HostTensor.from_bits(codes.reshape(5, 6), "u3")
    host = tv.packed(reference.data.copy(), "u3", (5, 6))
    assert np.array_equal(host.to_numpy(), reference.to_numpy())
    p = tv.packed(FakeCudaArray((12,), np.uint8), tv.u3, (4, 8), strides=(8, 1), offset=0)
    t = device_tensors.device_tensor("w", p)
    assert (t.dtype, t.shape, t.strides, t.offset) == (tv.u3, (4, 8), (8, 1), 0)
    with pytest.raises(ValueError, match="reach outside 12 bytes"):
        tv.packed(FakeCudaArray((12,), np.uint8), tv.u3, (5, 8))
    with pytest.raises(TypeError, match="1-D contiguous uint8"):
        tv.packed(FakeCudaArray((12,), np.float32), tv.u3, (2, 8))


# -- the artifact ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scale_add_compiled():
    return tv.compile(scale_add, "sm_90")


def test_an_artifact_round_trips_through_its_files_and_refuses_a_corrupt_cubin(
        scale_add_compiled, tmp_path):
    art = artifact_of(scale_add_compiled)
    path = art.save(tmp_path)
    loaded = KernelArtifact.load(path)
    assert loaded.cubin == scale_add_compiled.cubin and loaded.description == art.description
    assert loaded.description["resources"]["spills"] == 0
    cubin = path.with_suffix(".cubin")
    data = bytearray(cubin.read_bytes())
    data[len(data) // 2] ^= 1
    cubin.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match its checksum"):
        KernelArtifact.load(path)
    path.write_text('{"format": 99}')
    with pytest.raises(ArtifactError, match="artifact format 99"):
        KernelArtifact.load(path)


_C_SIZES = {"unsigned long long": 8, "long long": 8, "int": 4, "unsigned int": 4, "float": 4,
            "double": 8, "unsigned short": 2, "short": 2, "unsigned char": 1, "signed char": 1}


def test_the_packed_parameters_match_the_cuda_signature_nvrtc_compiled(scale_add_compiled):
    art = artifact_of(scale_add_compiled)
    signature = re.search(r'extern "C" __global__ void __launch_bounds__\(\d+ TILEVM_MIN_BLOCKS\) '
                          r'\w+\((.*?)\)', scale_add_compiled.cuda_source).group(1)
    declared = [p.rsplit(" ", 1)[0].strip() for p in signature.split(",")]
    x = device_tensors.DeviceTensor(0x1000, tv.f32, (300,), (1,), 0)
    out = device_tensors.DeviceTensor(0x2000, tv.f32, (300,), (1,), 0, offset=3)
    bound = bind_arguments(art_signature(art), (x, out, 0.5), "cuda")
    packed = art.pack(bound, {})
    assert [ctypes.sizeof(a) for a in packed] == [_C_SIZES[c] for c in declared]
    by_name = dict(zip((a["name"] for a in art.description["abi"]), (a.value for a in packed)))
    assert by_name["x"] == 0x1000 and by_name["out"] == 0x2000 and by_name["out_offset"] == 3
    assert by_name["n"] == 300
    assert by_name["alpha"] == np.float32(0.5).view(np.uint32)


def art_signature(art):
    return artifact_module._Signature.of(art.description)


@pytest.mark.parametrize("name, dims", [("matmul", {"m": 130, "n": 65, "k": 40}),
                                        ("attention", None), ("softmax", None)])
def test_the_artifact_grid_equals_the_interpreters(name, dims):
    ir = getattr(load_example(name), name).ir()
    program = artifact_module._grid_program(ir)
    art = KernelArtifact(b"", {"name": ir.name, "grid": program})
    scalars = {p.name: 1.0 for p in ir.params if not hasattr(p.type, "scope")}
    rng = np.random.default_rng(1)
    for _ in range(5):
        sizes = {d: int(rng.integers(1, 5000)) for d in (dims or ir.dims())}
        assert art.grid(sizes, scalars) == launch_grid(ir, scalars, sizes)


def test_a_grid_the_launcher_cannot_evaluate_is_refused_at_build():
    @tv.kernel
    def float_grid(x: tv.Global[f32, "n"], scale: tv.Scalar[f32]):
        tv.launch(grid=tv.cast(tv.cast(n, f32) * scale, i32), warps=1)
        tv.store(x, tv.zeros((32,), f32), (tv.block_idx() * 32,))

    with pytest.raises(ArtifactError, match="its grid computes 'cast'"):
        artifact_module._grid_program(float_grid.ir())


# -- launches through a fake driver device -----------------------------------------------------


def test_a_kernel_call_on_gpu_arrays_compiles_for_the_gpu_and_launches(fake_gpu):
    x = FakeCudaArray((1000,), np.float32, 0x7F0000000000)
    out = FakeCudaArray((1000,), np.float32, 0x7F0000010000)
    scale_add(x, out, 3.0)
    scale_add(x, out, 3.0, block=128)
    first, second = fake_gpu[0].launches
    ir = scale_add.ir()
    assert first.grid == (*launch_grid(ir, {"alpha": 3.0}, {"n": 1000}), 1, 1)[:len(first.grid)]
    assert first.block == (64,) and second.grid[0] == 8
    assert first.args[0].value == 0x7F0000000000 and first.stream == 0
    assert len(fake_gpu[0].modules) == 2  # one module per constants, each loaded once
    scale_add(x, out, 3.0)
    assert len(fake_gpu[0].modules) == 2 and len(fake_gpu[0].launches) == 3


def test_workspaces_are_zeroed_on_the_stream_and_pooled_across_launches(fake_gpu):
    x = FakeCudaArray((300,), np.int32, 0x7F0000000000)
    out = FakeCudaArray((300,), np.int32, 0x7F0000010000)
    counts(x, out)
    counts(x, out)
    device = fake_gpu[0]
    assert len(device.launches) == 2 and len(device.allocations) == 1
    assert [m[1] for m in device.memsets] == [300 * 4, 300 * 4]
    ws = device.launches[0].args[-1].value
    assert device.memsets[0][0] == ws == device.launches[1].args[-1].value


def test_a_launchs_workspaces_share_one_allocation_and_one_memset(fake_gpu):
    x = FakeCudaArray((300,), np.int32, 0x7F0000000000)
    out = FakeCudaArray((300,), np.int32, 0x7F0000010000)
    three_workspaces(x, out)
    three_workspaces(x, out)
    device = fake_gpu[0]
    assert len(device.allocations) == 1
    # The zeroed ones first, each at a multiple of 256 bytes: counters (12 bytes), then sums
    # (300 × 2 f16 = 1,200 bytes) at 256; the scratch (1,200 bytes) after them at 1,536.
    first, second = (launch.args[-3:] for launch in device.launches)
    scratch, counters, sums = (a.value for a in first)
    assert [a.value for a in second] == [scratch, counters, sums]
    assert (sums - counters, scratch - counters) == (256, 1536)
    assert device.memsets == [(counters, 256 + 1200, 0)] * 2


def test_a_call_must_satisfy_the_artifacts_specialization(fake_gpu):
    art = build_artifact(scale_add, "sm_90", "aligned")
    aligned = FakeCudaArray((1024,), np.float32, 0x7F0000000000)
    art.launch(aligned, aligned, 1.0)
    with pytest.raises(ArtifactError, match="argument 'out': kernel scale_add was compiled for "
                                            "16-byte aligned data"):
        art.launch(aligned, FakeCudaArray((1024,), np.float32, 0x7F0000000004), 1.0)
    with pytest.raises(ArtifactError, match="'n' a multiple of 16; the call has n = 1000"):
        art.launch(FakeCudaArray((1000,), np.float32), FakeCudaArray((1000,), np.float32), 1.0)
    fake_gpu[0].arch = "sm_80"
    art._modules.clear()
    with pytest.raises(ArtifactError, match="compiled for sm_90; Fake GPU is sm_80"):
        art.launch(aligned, aligned, 1.0)


def test_large_dynamic_shared_memory_raises_the_functions_limit(fake_gpu, scale_add_compiled):
    art = artifact_of(scale_add_compiled)
    art.description["shared_bytes"] = 100 * 1024
    x = FakeCudaArray((64,), np.float32)
    art.launch(x, x, 1.0)
    function = next(iter(fake_gpu[0].modules[-1].functions.values()))
    assert function.dynamic_shared == 100 * 1024
    assert fake_gpu[0].launches[-1].shared_bytes == 100 * 1024


def test_f16_scalar_arguments_travel_as_their_bits(fake_gpu):
    @tv.kernel
    def fill(out: tv.Global[f16, "n"], value: tv.Scalar[f16]):
        tv.launch(grid=tv.cdiv(n, 64), warps=2)
        tv.store(out, tv.zeros((64,), f16) + value, (tv.block_idx() * 64,))

    art = build_artifact(fill, "sm_90")
    art.launch(FakeCudaArray((10,), np.float16), 1.5)
    by_name = dict(zip((a["name"] for a in art.description["abi"]),
                       fake_gpu[0].launches[-1].args))
    assert by_name["value"].value == np.float16(1.5).view(np.uint16)


def test_device_arrays_copy_both_ways_and_bind_as_their_dtype(fake_gpu):
    rng = np.random.default_rng(3)
    values = rng.standard_normal((3, 7)).astype(np.float16)
    d = tv.DeviceArray.from_numpy(values[:, ::2])  # a strided view is copied dense
    assert np.array_equal(d.to_numpy(), values[:, ::2])
    assert d.__cuda_array_interface__["typestr"] == "<f2" and d.dtype == tv.f16
    assert tv.DeviceArray.empty((2,), "bf16").__cuda_array_interface__["typestr"] == "<u2"
    codes = tv.HostTensor.from_bits(rng.integers(0, 8, (5, 9)), "u3")
    w = tv.DeviceArray.from_host_tensor(codes)
    assert np.array_equal(w.to_host_tensor().bits(), codes.bits())
    t = device_tensors.device_tensor("w", w)
    assert (t.dtype, t.shape, t.strides, t.data_ptr) == (tv.u3, (5, 9), (9, 1), w.address)
    assert device_tensors.argument_device(w) == "cuda:0"


def test_events_time_in_stream_order_and_wait_for_the_end_event(monkeypatch):
    """CudaEvent through a stand-in driver: recorded on the stream asked for, the elapsed time
    read only after the end event was synchronized, destroyed with the object."""
    from types import SimpleNamespace

    from tilevm.runtime import cuda_driver

    calls: list[tuple] = []
    driver = SimpleNamespace(
        CUresult=SimpleNamespace(CUDA_SUCCESS=0), CUstream=lambda s: ("stream", s),
        cuEventCreate=lambda flags: (0, f"event{len(calls)}"),
        cuEventRecord=lambda h, s: (calls.append(("record", h, s)), (0,))[1],
        cuEventSynchronize=lambda h: (calls.append(("sync", h)), (0,))[1],
        cuEventElapsedTime=lambda a, b: (calls.append(("elapsed", a, b)), (0, 1.5))[1],
        cuEventDestroy=lambda h: (calls.append(("destroy", h)), (0,))[1])
    monkeypatch.setattr(cuda_driver, "_driver", lambda: driver)
    start, end = cuda_driver.CudaEvent("a"), cuda_driver.CudaEvent("b")
    start.record(7)
    end.record(7)
    assert start.elapsed_ms(end) == 1.5
    assert calls == [("record", "a", ("stream", 7)), ("record", "b", ("stream", 7)),
                     ("sync", "b"), ("elapsed", "a", "b")]
    del start, end
    assert {c for c in calls if c[0] == "destroy"} == {("destroy", "a"), ("destroy", "b")}
