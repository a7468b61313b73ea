"""The ptxas report parser, on report text written in ptxas's format, and on real spills."""

from __future__ import annotations

from tilevm.backend.cuda.nvrtc_compile import compile_cuda
from tilevm.backend.cuda.resources import KernelResources, parse_ptxas_report

# The shape of an NVRTC 13 report (two entries, the first with every field non-zero, the second
# with the optional smem/cmem parts left out), typed from ptxas's format with chosen numbers.
REPORT = """\
ptxas info    : Overriding maximum register limit 256 for 'first' with  24 of maxrregcount option
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'first' for 'sm_90a'
ptxas info    : Function properties for first
ptxas         .     616 bytes stack frame, 904 bytes spill stores, 976 bytes spill loads
ptxas info    : Used 24 registers, used 2 barriers, 616 bytes cumulative stack size, \
4096 bytes smem, 384 bytes cmem[0], 8 bytes cmem[2]
ptxas info    : Compile time = 37.251 ms
ptxas info    : Compiling entry function 'second' for 'sm_90a'
ptxas info    : Function properties for second
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 7 registers, used 0 barriers
ptxas info    : Compile time = 1.0 ms
"""


def test_parse_every_field():
    records = parse_ptxas_report(REPORT)
    assert list(records) == ["first", "second"]
    assert records["first"] == KernelResources(
        name="first", arch="sm_90a", registers=24, barriers=2, stack_frame_bytes=616,
        spill_store_bytes=904, spill_load_bytes=976, shared_bytes=4096,
        constant_bytes={0: 384, 2: 8})
    assert records["first"].spills and not records["first"].clean
    assert records["second"] == KernelResources(name="second", arch="sm_90a", registers=7)
    assert records["second"].clean


def test_device_function_properties_do_not_leak_into_entries():
    log = REPORT.replace(
        "ptxas info    : Compiling entry function 'second'",
        "ptxas info    : Function properties for helper\n"
        "ptxas         .     64 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads\n"
        "ptxas info    : Compiling entry function 'second'")
    assert parse_ptxas_report(log)["second"].clean


def test_json_round_trip():
    for record in parse_ptxas_report(REPORT).values():
        assert KernelResources.from_json(record.to_json()) == record


def test_no_report():
    assert parse_ptxas_report("") == {}


def test_real_spills_are_seen(nvrtc_cache):
    # 64 live floats cannot fit in 24 registers: ptxas must spill to the stack frame.
    source = r"""
extern "C" __global__ void crowded(float* x) {
  float a[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) a[i] = x[i * threadIdx.x];
  float s = 0.0f;
#pragma unroll
  for (int i = 0; i < 64; ++i) s += a[i] * a[63 - i];
#pragma unroll
  for (int i = 0; i < 64; ++i) x[i * 7] = a[i] * s;
}
"""
    record = compile_cuda(source, "sm_80", options=["--maxrregcount=24"],
                          cache_dir=nvrtc_cache).resources["crowded"]
    assert record.registers <= 24
    assert record.spills and record.stack_frame_bytes > 0 and not record.clean
