"""Reading cuobjdump listings: opcode counts per function, predicated instructions included."""

from __future__ import annotations

from tilevm.backend.cuda.sass import cuobjdump_path, sass_opcodes

# The shape of `cuobjdump -sass` output (two functions, predicated and uniform-predicated
# instructions, encodings on the following lines), typed from the tool's format.
LISTING = """\
\tcode for sm_90
\t\tFunction : second
\t.headerflags\t@"EF_CUDA_ACCELERATORS EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0000*/                   LDC R1, c[0x0][0x28] ;                /* 0x00000a00ff017b82 */
                                                                         /* 0x000fe20000000800 */
        /*0010*/              @!P0 STG.E desc[UR4][R2.64], R5 ;          /* 0x0000000502007986 */
        /*0020*/               @P1 HMMA.16816.F32.BF16 R4, R8, R12, R4 ; /* 0x0000000c0804723c */
        /*0030*/             @!UP0 BRA 0x60 ;                            /* 0xfffffffc00fc7947 */
        /*0040*/                   EXIT ;                                /* 0x000000000000794d */
\t\t..........
\t\tFunction : first
        /*0000*/                   HMMA.16816.F32 R4, R8, R12, R4 ;      /* 0x0000000c0804723c */
        /*0010*/                   HMMA.16816.F32 R4, R8, R14, R4 ;      /* 0x0000000e0804723c */
"""


def test_counts_per_function():
    ops = sass_opcodes(LISTING)
    assert list(ops) == ["second", "first"]
    assert ops["second"] == {"LDC": 1, "STG": 1, "HMMA": 1, "BRA": 1, "EXIT": 1}
    assert ops["first"] == {"HMMA": 2}


def test_counts_with_modifiers():
    ops = sass_opcodes(LISTING, with_modifiers=True)
    assert ops["second"]["STG.E"] == 1 and ops["second"]["HMMA.16816.F32.BF16"] == 1
    assert ops["first"] == {"HMMA.16816.F32": 2}


def test_the_tool_is_the_wheel_s():
    path = cuobjdump_path()
    assert path is not None and path.parts[-4:] == ("nvidia", "cu13", "bin", "cuobjdump")
