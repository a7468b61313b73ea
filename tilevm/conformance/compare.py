"""How a GPU output is held to the CPU backend's (and the golden test's CPU output to a GPU's).

This module imports only numpy and the standard library: ``bench/gpu_check.py`` loads it by file
path on the GPU machine, whose Python has no tilevm installed (see ``bench/README.md``).

Three kinds of check (DESIGN §3, ``docs/numeric-contract.md``):

- ``exact``: the bit patterns are equal, element by element, except that where both are NaNs of
  a float ``element`` type the payloads may differ (NaN payloads are not part of the contract;
  such pairs are counted in ``nan_payload_differences``).
- ``bound``: an ``mma`` or ``.approx`` output, within a per-element absolute ``bound`` of the
  other: equal bits pass; two NaNs pass; a NaN against a number fails; two finite values pass
  when ``|got − want| ≤ bound``; an infinity against a finite value of the same sign passes only
  when the finite value plus the bound reaches the type's overflow threshold (``max + ulp/2``:
  one execution may round a sum just past the largest finite value and the other not).
- ``accuracy``: the accuracy rule of DESIGN §8 for whole kernels, against float64 ``ref`` and
  the baseline ``base``: ``max|got − ref| ≤ 2·max|base − ref| + u·max|ref|``.

Every function returns a JSON-ready ``dict`` with ``ok`` and the facts that decided it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ELEMENTS", "check_accuracy", "compare", "compare_bounded", "compare_exact",
           "decode"]

# element name -> (bytes, kind): kind "uint", "int" or "float"
ELEMENTS: dict[str, tuple[int, str]] = {
    "u8": (1, "uint"), "u16": (2, "uint"), "u32": (4, "uint"), "u64": (8, "uint"),
    "s8": (1, "int"), "s16": (2, "int"), "s32": (4, "int"), "s64": (8, "int"),
    "f16": (2, "float"), "bf16": (2, "float"), "f32": (4, "float"), "f64": (8, "float"),
}
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
# The smallest magnitude that rounds to infinity: the largest finite value plus half its ulp.
_OVERFLOW = {"f16": 65520.0, "bf16": (2 - 2.0**-8) * 2.0**127, "f32": (2 - 2.0**-24) * 2.0**127,
             "f64": np.inf}
_SHOWN = 5  # mismatches listed per check


def _bits(data: np.ndarray, element: str) -> np.ndarray:
    """The elements' bit patterns (unsigned) from an array of any dtype holding their bytes."""
    size, _ = ELEMENTS[element]
    raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if raw.size % size:
        raise ValueError(f"{raw.size} bytes are not a whole number of {element} elements")
    return raw.view(_UINT[size])


def decode(data: np.ndarray, element: str) -> np.ndarray:
    """The elements held in ``data``'s bytes as float64 (integers exactly, floats with their
    infinities and NaNs)."""
    bits = _bits(data, element)
    size, kind = ELEMENTS[element]
    if kind == "uint":
        return bits.astype(np.float64)
    if kind == "int":
        return bits.view({1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}[size]).astype(
            np.float64)
    if element == "bf16":  # a bf16 is the high half of an f32
        return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)
    return bits.view({"f16": np.float16, "f32": np.float32, "f64": np.float64}[element]).astype(
        np.float64)


def _hex(bits: np.ndarray, i: int) -> str:
    return f"0x{int(bits[i]):0{2 * bits.dtype.itemsize}x}"


def _listing(bad: np.ndarray, got: np.ndarray, want: np.ndarray,
             bound: np.ndarray | None = None) -> list[dict[str, Any]]:
    rows = []
    for i in bad[:_SHOWN].tolist():
        row: dict[str, Any] = {"index": i, "got": _hex(got, i), "want": _hex(want, i)}
        if bound is not None:
            row["bound"] = float(bound[i])
        rows.append(row)
    return rows


def _nan(bits: np.ndarray, element: str) -> np.ndarray:
    if ELEMENTS[element][1] != "float":
        return np.zeros(bits.shape, bool)
    return np.isnan(decode(bits, element))


def compare_exact(got: np.ndarray, want: np.ndarray, element: str) -> dict[str, Any]:
    """Bit for bit, NaN payloads aside (see the module's docstring)."""
    g, w = _bits(got, element), _bits(want, element)
    if g.size != w.size:
        return {"ok": False, "error": f"{g.size} elements against {w.size}"}
    differ = g != w
    both_nan = _nan(g, element) & _nan(w, element)
    bad = np.flatnonzero(differ & ~both_nan)
    return {"ok": not bad.size, "elements": int(g.size), "mismatches": int(bad.size),
            "nan_payload_differences": int((differ & both_nan).sum()),
            "first_mismatches": _listing(bad, g, w)}


def compare_bounded(got: np.ndarray, want: np.ndarray, element: str,
                    bound: np.ndarray) -> dict[str, Any]:
    """Within ``bound`` (float64, one per element), with the rules for NaN and infinity of the
    module's docstring."""
    g, w = _bits(got, element), _bits(want, element)
    b = np.asarray(bound, np.float64).reshape(-1)
    if not g.size == w.size == b.size:
        return {"ok": False, "error": f"sizes {g.size}, {w.size}, bound {b.size}"}
    gv, wv = decode(g, element), decode(w, element)
    same = g == w
    gnan, wnan = np.isnan(gv), np.isnan(wv)
    finite = np.isfinite(gv) & np.isfinite(wv)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(finite, np.abs(gv - wv), 0.0)
        close = finite & (diff <= b)
        one_inf = (np.isinf(gv) ^ np.isinf(wv)) & ~gnan & ~wnan
        finite_side = np.where(np.isinf(gv), wv, gv)
        infinite_side = np.where(np.isinf(gv), gv, wv)
        overflow = one_inf & (np.sign(finite_side) == np.sign(infinite_side)) & (
            np.abs(finite_side) + b >= _OVERFLOW[element])
    ok = same | (gnan & wnan) | close | overflow
    bad = np.flatnonzero(~ok)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(finite & (b > 0), diff / b, 0.0)
    return {"ok": not bad.size, "elements": int(g.size), "mismatches": int(bad.size),
            "differing_bits": int((~same & ~(gnan & wnan)).sum()),
            "max_abs_difference": float(diff.max(initial=0.0)),
            "max_difference_over_bound": float(ratio.max(initial=0.0)),
            "first_mismatches": _listing(bad, g, w, b)}


def check_accuracy(got: np.ndarray, element: str, ref: np.ndarray, base: np.ndarray,
                   unit_roundoff: float) -> dict[str, Any]:
    """The accuracy rule: ``max|got − ref| ≤ 2·max|base − ref| + u·max|ref|`` (``ref`` and
    ``base`` float64 of the output's shape; a NaN in ``got`` fails)."""
    ours = decode(got, element)
    ref64 = np.asarray(ref, np.float64).reshape(-1)
    base64 = np.asarray(base, np.float64).reshape(-1)
    if not ours.size == ref64.size == base64.size:
        return {"ok": False, "error": f"sizes {ours.size}, ref {ref64.size}, base {base64.size}"}
    error = float(np.max(np.abs(ours - ref64), initial=0.0))
    bound = 2 * float(np.max(np.abs(base64 - ref64), initial=0.0)) + unit_roundoff * float(
        np.max(np.abs(ref64), initial=0.0))
    nans = int(np.isnan(ours).sum())
    return {"ok": bool(error <= bound) and not nans, "elements": int(ours.size),
            "max_error": error, "bound": bound, "nans": nans}


def compare(check: dict[str, Any], got: np.ndarray, want: np.ndarray,
            extra: dict[str, np.ndarray]) -> dict[str, Any]:
    """Apply ``check`` (``{"kind", "element"[, "unit_roundoff"]}``) to one output buffer;
    ``extra`` holds the arrays the kind needs (``bound``; ``ref`` and ``base``). The result
    names the kind."""
    kind, element = check["kind"], check["element"]
    if kind == "exact":
        result = compare_exact(got, want, element)
    elif kind == "bound":
        result = compare_bounded(got, want, element, extra["bound"])
    elif kind == "accuracy":
        result = check_accuracy(got, element, extra["ref"], extra["base"],
                                float(check["unit_roundoff"]))
        result["cpu"] = compare_exact(got, want, element)  # for information: same bits?
        result["cpu"].pop("ok")
    else:
        raise ValueError(f"unknown check kind {kind!r}")
    return {"kind": kind, "element": element, **result}
