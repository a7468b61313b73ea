"""emit_cuda: determinism, the architecture diagnostic, kernel-level errors, and the exact C++
spelling of inline PTX (constraints, clobbers, predicates, guards, names, index arithmetic)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tilevm.backend.cuda import (
    CudaCompileError,
    UnsupportedArchError,
    compile_cuda,
    emit_cuda,
)
from tilevm.ir.thread import (
    B32,
    BF16,
    F16,
    F32,
    PRED,
    S32,
    U32,
    U64,
    KernelBuilder,
    ThreadIRError,
    vector,
)

HERE = Path(__file__).parent


# -- determinism ---------------------------------------------------------------------------------

def _all_programs(programs, arch: int):
    return [*programs.issue_programs(), *programs.every_intrinsic_kernels(arch)]


def test_same_program_same_bytes(programs):
    first = emit_cuda(_all_programs(programs, 90), "sm_90")
    again = emit_cuda(_all_programs(programs, 90), "sm_90")  # built anew
    assert first == again
    kernel = programs.examples.warp_reduce()
    assert emit_cuda(kernel, "sm_80") == emit_cuda(kernel, "sm_80")  # printed twice


def test_same_bytes_in_another_process(programs):
    # Another interpreter with another hash seed: no dict/set order or id() may leak into the text.
    script = textwrap.dedent(f"""
        import hashlib, importlib.util
        spec = importlib.util.spec_from_file_location("p", {str(HERE / "cuda_programs.py")!r})
        p = importlib.util.module_from_spec(spec); spec.loader.exec_module(p)
        from tilevm.backend.cuda import emit_cuda
        kernels = [*p.issue_programs(), *p.every_intrinsic_kernels(90)]
        print(hashlib.sha256(emit_cuda(kernels, "sm_90").encode()).hexdigest())
    """)
    env = dict(os.environ, PYTHONHASHSEED="12345")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          check=True)
    here = hashlib.sha256(emit_cuda(_all_programs(programs, 90), "sm_90").encode()).hexdigest()
    assert done.stdout.strip() == here


# -- the architecture diagnostic -----------------------------------------------------------------

def _fp8_mma():
    kb = KernelBuilder("fp8_mma", block_threads=32)
    src = kb.param("src", U64, pointer=True)
    a = kb.ld("global", src, vector(B32, 4))
    b = kb.ld("global", src, vector(B32, 2))
    c = kb.ld("global", src, vector(F32, 4))
    kb.st("global", src, kb.mma("m16n8k32", "e4m3", a, b, c))
    return kb.finish()


def _bf16_add():
    kb = KernelBuilder("bf16_add", block_threads=32)
    src = kb.param("src", U64, pointer=True)
    x = kb.ld("global", src, BF16)
    kb.st("global", src, kb.add(x, x))
    return kb.finish()


@pytest.mark.parametrize(("build", "arch", "needs", "instruction"), [
    (_fp8_mma, "sm_80", "sm_89", "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32"),
    (_fp8_mma, "sm_86", "sm_89", "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32"),
    (_bf16_add, "sm_89", "sm_90", "add.rn.bf16"),
])
def test_intrinsic_below_its_arch_is_a_diagnostic(build, arch, needs, instruction):
    kernel = build()
    with pytest.raises(ThreadIRError) as info:
        emit_cuda(kernel, arch)
    message = str(info.value)
    assert instruction in message and needs in message and arch in message


@pytest.mark.parametrize(("build", "arch"), [(_fp8_mma, "sm_89"), (_fp8_mma, "sm_90"),
                                             (_bf16_add, "sm_90a")])
def test_intrinsic_at_its_arch_prints(build, arch, nvrtc_cache):
    binary = compile_cuda(emit_cuda(build(), arch), arch, cache_dir=nvrtc_cache)
    assert binary.resources[build().name].clean


# -- kernel-level errors -------------------------------------------------------------------------

def _tiny(name: str = "tiny", shared_bytes: int = 0):
    kb = KernelBuilder(name, block_threads=64, shared_bytes=shared_bytes)
    out = kb.param("out", U64, pointer=True)
    kb.st("global", out, kb.sreg("tid.x"))
    return kb.finish()


@pytest.mark.parametrize("name", ["int", "threadIdx", "2fast", "my-kernel", "tilevm_smem"])
def test_kernel_name_must_be_an_identifier(name):
    with pytest.raises(ThreadIRError, match="C\\+\\+ identifier"):
        emit_cuda(_tiny(name), "sm_80")


def test_shared_memory_limit_of_the_target():
    kernel = _tiny(shared_bytes=160 * 1024)
    with pytest.raises(ThreadIRError, match=r"163840 bytes of shared memory.*sm_86.*101376"):
        emit_cuda(kernel, "sm_86")
    assert "tilevm_smem" in emit_cuda(kernel, "sm_80")  # 163 KB there


def test_argument_errors():
    with pytest.raises(ThreadIRError, match="distinct"):
        emit_cuda([_tiny(), _tiny()], "sm_80")
    with pytest.raises(TypeError, match="Kernel"):
        emit_cuda([], "sm_80")
    with pytest.raises(UnsupportedArchError, match="sm_75"):
        emit_cuda(_tiny(), "sm_75")


# -- spelling ------------------------------------------------------------------------------------

def _lines(kernel, arch: str = "sm_80") -> list[str]:
    return [line.strip() for line in emit_cuda(kernel, arch).splitlines()]


def test_constraints_and_clobbers():
    kb = KernelBuilder("spelling", block_threads=32, shared_bytes=64)
    out = kb.param("out", U64, pointer=True)
    h = kb.ld("global", out, F16)
    s = kb.add(h, h)
    v = kb.ld("global", out, vector(B32, 4), nc=True, offset=16)
    kb.st("shared", kb.shared_base(), s, offset=2)
    kb.st("global", out, kb.cvt_pack(kb.cvt(h, F32), 1.0, "f16x2"))
    kb.st("global", out, kb.extract(v, 3), offset=-4)
    lines = _lines(kb.finish())
    # Loads and stores: volatile, "memory"; f16 moves as .b16 through an "h" register.
    assert 'asm volatile("ld.global.b16 %0, [%1];" : "=h"(r0) : "l"(out) : "memory");' in lines
    assert 'asm volatile("st.shared.b16 [%0+2], %1;" : : "r"(r3), "h"(r1) : "memory");' in lines
    assert 'asm volatile("st.global.b32 [%0+-4], %1;" : : "l"(out), "r"(r6) : "memory");' in lines
    # Arithmetic: neither volatile nor clobbering memory, so NVVM may schedule and delete it.
    assert 'asm("add.rn.f16 %0, %1, %2;" : "=h"(r1) : "h"(r0), "h"(r0));' in lines
    # cvt.rn.f16x2.f32 d, a, b: a (here the converted h) first, to the upper half, as PTX says.
    assert 'asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r5) : "f"(r4), "f"(1.0f));' in lines
    # A 16-byte non-coherent vector load: four outputs, braces in the PTX.
    assert 'asm volatile("ld.global.nc.v4.b32 {%0, %1, %2, %3}, [%4+16];"' in lines
    assert ': "=r"(r2[0]), "=r"(r2[1]), "=r"(r2[2]), "=r"(r2[3])' in lines
    assert "r6 = r2[3];" in lines  # extract is a C++ copy


def test_float_registers_in_bit_positions_are_reinterpreted(nvrtc_cache):
    kb = KernelBuilder("fragments", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    a = kb.ld("global", out, vector(U32, 4))
    b = kb.ld("global", out, vector(F32, 2))  # f32 registers as the .b32 B fragment
    c = kb.ld("global", out, vector(B32, 4))  # b32 registers as the f32 accumulator
    d = kb.mma("m16n8k16", "f16", a, b, c)
    kb.st("global", out, d)
    frag = kb.emit("ldmatrix", (kb.sreg("laneid"),), dst_type=vector(F32, 2), num=2)
    kb.st("global", out, frag)
    source = emit_cuda(kb.finish(), "sm_80")
    # Inputs: float registers passed as their bits with "r"; .b32 registers go anywhere.
    assert '"r"(__float_as_uint(r1[0]))' in source and '"r"(__float_as_uint(r1[1]))' in source
    assert '"r"(r2[0]), "r"(r2[1]), "r"(r2[2]), "r"(r2[3])' in source
    # Outputs: a float register written by a .b32 result goes through a temporary.
    assert '"=r"(tilevm_t0), "=r"(tilevm_t1)' in source
    assert "r5[0] = __uint_as_float(tilevm_t0);" in source
    assert compile_cuda(source, "sm_80", cache_dir=nvrtc_cache).resources["fragments"].clean


def test_predicates_and_guards():
    kb = KernelBuilder("preds", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    x = kb.ld("global", out, S32)
    p = kb.setp("lt", x, 0)
    y = kb.selp(x, 1, p)
    kb.st("global", out, y, guard=p, guard_negated=True)
    kernel = kb.finish()
    # A predicate is a 0/1 unsigned: setp and selp on integers are C++ (bool converts to 0/1).
    lines = _lines(kernel)
    assert "r1 = r0 < 0;" in lines and "r2 = r1 ? r0 : 1;" in lines
    assert "if (!r1) {" in lines
    # As inline PTX, setp writes a PTX predicate, turned into 0/1 with selp; selp reads it back
    # with setp.ne (the way every predicate still crosses an asm statement: vote, f16 setp).
    lines = [line.strip() for line in emit_cuda(kernel, "sm_80", plain_cpp=False).splitlines()]
    text = "\n".join(lines)
    assert '"  setp.lt.s32 p0, %1, %2;\\n"' in lines
    assert '"  selp.u32 %0, 1, 0, p0;\\n"' in lines
    assert '"  setp.ne.b32 p0, %3, 0;\\n"' in lines
    assert '"  selp.s32 %0, %1, %2, p0;\\n"' in lines
    assert "if (!r1) {" in lines
    assert text.count(".reg .pred p0;") == 2


def test_register_names_are_valid_cpp(nvrtc_cache):
    kb = KernelBuilder("names", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    regs = [kb.reg(U32, name=n) for n in ("int", "threadIdx", "tilevm_smem", "my-reg", "__x")]
    for r in regs:
        kb.mov(kb.sreg("laneid"), out=r)
        kb.st("global", out, r)
    source = emit_cuda(kb.finish(), "sm_80")
    for bad in ("unsigned int =", "unsigned threadIdx ", "unsigned tilevm_smem ", "my-reg"):
        assert bad not in source
    assert compile_cuda(source, "sm_80", cache_dir=nvrtc_cache).resources["names"].clean


def _indexing_kernel():
    kb = KernelBuilder("indices", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    acc = kb.array(S32, 4, name="acc")
    with kb.for_(0, 4, unroll=True) as i:
        kb.mov(kb.sreg("laneid"), S32, out=acc[i])
    with kb.for_(0, 8, unroll=True) as i:
        # (i - 8) is negative: C++'s truncating / and % would pick other elements.
        kb.add(acc[(i - 8) // 4 + 2], acc[(i - 8) % 4], out=acc[i // 2])
    with kb.for_(0, 4, unroll=True) as i:
        kb.st("global", out, acc[i])
    return kb.finish()


def test_index_division_is_floor_division(nvrtc_cache):
    source = emit_cuda(_indexing_kernel(), "sm_80")
    assert "acc[(tilevm_floordiv((i_1 - 8), 4) + 2)]" in source
    assert "acc[tilevm_floormod((i_1 - 8), 4)]" in source
    assert "acc[(i_1 / 2)]" in source  # non-negative operands: plain C++ division
    binary = compile_cuda(source, "sm_80", cache_dir=nvrtc_cache)
    assert binary.resources["indices"].clean  # constant indices: the array stayed in registers


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a host C compiler to run the helpers")
def test_floor_helpers_agree_with_python(tmp_path):
    # The printed helpers, compiled for the host, against Python's // and % (the Thread IR's
    # meaning of index arithmetic) on every pair in a range with both signs.
    source = emit_cuda(_indexing_kernel(), "sm_80")
    helpers = source[source.index("__device__"):source.index('extern "C"')]
    program = helpers.replace("__device__ __forceinline__ ", "static ") + textwrap.dedent("""
        #include <stdio.h>
        int main(void) {
          for (int a = -40; a <= 40; ++a)
            for (int b = -9; b <= 9; ++b)
              if (b != 0) printf("%d %d %d %d\\n", a, b, tilevm_floordiv(a, b),
                                 tilevm_floormod(a, b));
          return 0;
        }
    """)
    (tmp_path / "floor.c").write_text(program)
    subprocess.run(["cc", "-O1", "-o", str(tmp_path / "floor"), str(tmp_path / "floor.c")],
                   check=True)
    output = subprocess.run([str(tmp_path / "floor")], capture_output=True, text=True,
                            check=True).stdout
    rows = [tuple(map(int, line.split())) for line in output.splitlines()]
    assert len(rows) == 81 * 18
    for a, b, q, r in rows:
        assert (q, r) == (a // b, a % b), (a, b)


def test_loops_and_branches():
    kb = KernelBuilder("loops", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    n = kb.param("n", S32)
    total = kb.reg(S32, name="total")
    with kb.for_(0, n, 2, name="k"):
        kb.add(total, 1, out=total)
    with kb.for_(0, 4, unroll=True, type=U32, name="u") as u:
        kb.add(total, kb.mov(u, S32), out=total)
    with kb.if_(kb.setp("gt", total, 3)):
        kb.st("global", out, total)
    with kb.else_():
        kb.st("global", out, total, offset=4)
    lines = _lines(kb.finish())
    assert lines[lines.index("for (int k = 0; k < n; k += 2) {") - 1] == "#pragma unroll 1"
    assert lines[lines.index("for (unsigned u = 0; (int)u < 4; u += 1) {") - 1] == "#pragma unroll"
    assert "if (r1) {" in lines and "} else {" in lines


def test_while_loops_print_and_compile(nvrtc_cache):
    # A uniform while with a barrier in each body, a divergent compare-and-swap retry loop and a
    # for loop inside it (whose variable the for statement declares, not the kernel's top).
    kb = KernelBuilder("whiles", block_threads=64, shared_bytes=16)
    out = kb.param("out", U64, pointer=True)
    n = kb.param("n", S32)
    smem = kb.shared_base()
    i = kb.reg(S32, name="i")
    with kb.while_(uniform=True) as outer:
        kb.bar_sync()
        outer.cond(kb.setp("lt", i, n))
        done = kb.reg(PRED, name="done")
        kb.mov(False, PRED, out=done)
        with kb.while_() as retry:
            retry.cond(kb.unary("not", done, type=PRED))
            old = kb.ld("shared", smem, B32)
            seen = kb.atom("shared", "cas", smem, old, kb.add(kb.mov(old, U32), 1), type=B32)
            kb.setp("eq", seen, old, type=B32, out=done)
            with kb.for_(0, n, name="k") as k:
                kb.add(i, k, out=i)
        kb.bar_sync()
        kb.add(i, 1, out=i)
    kb.st("global", out, i)
    kernel = kb.finish()
    lines = _lines(kernel)
    first = lines.index("while (true) {")
    assert lines.count("while (true) {") == 2
    assert "if (!(done ^ 1u)) break;" not in lines          # the test reads a register
    assert any(line.startswith("if (!(r") and line.endswith(")) break;") for line in lines)
    assert lines.index("for (int k = 0; k < n; k += 1) {") > first
    assert not any(line.startswith("int k = 0;") for line in lines)
    for arch in ("sm_80", "sm_90"):
        compile_cuda(emit_cuda(kernel, arch), arch, cache_dir=nvrtc_cache)


def test_source_locations_become_comments():
    kb = KernelBuilder("located", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    kb.loc = "user.py:12"
    x = kb.ld("global", out, U32)
    y = kb.add(x, 1)
    kb.loc = "user.py:13"
    kb.st("global", out, y)
    lines = _lines(kb.finish())
    assert lines.count("// user.py:12") == 1 and lines.count("// user.py:13") == 1
    assert lines.index("// user.py:12") < lines.index("// user.py:13")
    assert lines[lines.index("// user.py:13") + 1].startswith('asm volatile("st.global.u32')


def test_compile_error_in_generated_code_shows_the_line():
    kb = KernelBuilder("broken", block_threads=32)
    out = kb.param("out", U64, pointer=True)
    x = kb.ld("global", out, F32)
    kb.st("global", out, kb.fma(x, x, x))
    source = emit_cuda(kb.finish(), "sm_80")
    lines = source.splitlines()
    bad_line = next(k for k, line in enumerate(lines, 1) if "fma.rn.f32" in line)
    corrupted = source.replace("fma.rn.f32", "fma.rn.f33")
    with pytest.raises(CudaCompileError) as info:
        compile_cuda(corrupted, "sm_80")
    assert info.value.lines == [bad_line]
    assert f"> {bad_line} |" in str(info.value) and "fma.rn.f33" in str(info.value)
