"""``bench/operand_slice.py``: the B-operand slice of a main loop, on a hand-written SASS loop
whose answer is counted by hand below (the oracle): address arithmetic that uses the same
opcodes as a conversion is left out, a register reused for an address before the conversion
writes it is not followed into the address, and a B operand converted one pass ahead (after the
HMMA, for the next pass) is found through the back-edge."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


LOOP = """\
        code for sm_80
                Function : loop
        /*0000*/                   LOP3.LUT R20, R3, 0x1fc, RZ, 0xc0, !PT ;
        /*0010*/                   LOP3.LUT R12, R20, 0x7, RZ, 0xc0, !PT ;
        /*0020*/                   LDS R30, [R12] ;
        /*0030*/                   SHF.R.U32.HI R21, RZ, 0x3, R20 ;
        /*0040*/                   LDS.64 R10, [R21] ;
        /*0050*/                   LOP3.LUT R12, R10, 0x640f640f, R40, 0xc8, !PT ;
        /*0060*/                   HADD2 R12, R12, -1032, -1032 ;
        /*0070*/                   PRMT R13, R11, 0x1010, R11 ;
        /*0080*/                   HMUL2 R14, R12, R13 ;
        /*0090*/                   HMUL2 R15, R12, R11 ;
        /*00a0*/                   HMMA.16816.F32 R24, R4, R14, R24 ;
        /*00b0*/                   HMMA.16816.F32 R28, R4, R16, R28 ;
        /*00c0*/                   SHF.R.U32.HI R16, RZ, 0x6, R10 ;
        /*00d0*/                   HADD2 R17, R16, -24, -24 ;
        /*00e0*/                   ISETP.GE.AND P0, PT, R3, R2, PT ;
        /*00f0*/              @!P0 BRA 0x0 ;
"""


def test_the_slice_is_the_conversion_and_nothing_else():
    metrics = _load("sass_metrics")
    slicer = _load("operand_slice")
    body = metrics.parse_sass(LOOP)["loop"]["instructions"]
    sliced = slicer.b_operand_instructions(body)
    # B of the first HMMA is R14:R15, two HMUL2 of the converted R12 (LOP3, HADD2 of the loaded
    # R10) and of R11 broadcast by PRMT. B of the second is R16:R17, converted after it for the
    # next pass (SHF, HADD2). Not in it: the lane bits and the addresses (0x00, 0x30), R12 as an
    # address before the conversion reuses it (0x10), the loads, the MMAs, the loop test.
    assert [i.address for i in sliced] == [0x50, 0x60, 0x70, 0x80, 0x90, 0xc0, 0xd0]


PIPELINED = """\
        code for sm_90
                Function : pipelined
        /*0000*/                   LDG.E.64 R8, desc[UR4][R2.64] ;
        /*0010*/                   LOP3.LUT R12, R10, 0x640f640f, R40, 0xc8, !PT ;
        /*0020*/                   IMAD.MOV.U32 R40, RZ, RZ, 0x7c007c00 ;
        /*0030*/                   HADD2 R12, R12, -1032, -1032 ;
        /*0040*/                   HMUL2 R14, R12, R11 ;
        /*0050*/                   MOV R15, R14 ;
        /*0060*/                   HMMA.16816.F32 R24, R4, R14, R24 ;
        /*0070*/                   IMAD.MOV.U32 R10, RZ, RZ, R8 ;
        /*0080*/                   IMAD.MOV.U32 R11, RZ, RZ, R9 ;
        /*0090*/                   IADD3 R2, R2, 0x10, RZ ;
        /*00a0*/              @!P0 BRA 0x0 ;
"""


def test_register_copies_are_followed_and_not_counted():
    # The loop loads the next pass's words into R8:R9 and copies them into R10:R11 at its end;
    # the pass converts R10:R11. The slice reaches the load through the copies (0x70, 0x80) and
    # the copy into R15 (0x50) without counting them, and counts the mask's materialization
    # (0x20, an immediate, for the next pass's LOP3).
    metrics = _load("sass_metrics")
    slicer = _load("operand_slice")
    body = metrics.parse_sass(PIPELINED)["pipelined"]["instructions"]
    sliced = slicer.b_operand_instructions(body)
    assert [i.address for i in sliced] == [0x10, 0x20, 0x30, 0x40]


def test_a_loop_without_hmma_has_no_slice():
    metrics = _load("sass_metrics")
    slicer = _load("operand_slice")
    body = metrics.parse_sass(LOOP.replace("HMMA.16816.F32", "HGMMA.64x64x16.F32"))["loop"]
    assert slicer.b_operand_instructions(body["instructions"]) is None
