"""The ptxas resource report (``--ptxas-options=-v``), parsed into one record per kernel.

ptxas writes, for each entry function, lines of this shape (NVRTC 13.0)::

    ptxas info    : Compiling entry function 'k' for 'sm_90a'
    ptxas info    : Function properties for k
    ptxas         .     616 bytes stack frame, 904 bytes spill stores, 976 bytes spill loads
    ptxas info    : Used 24 registers, used 1 barriers, 1024 bytes smem, 360 bytes cmem[0]

Parts that are zero may be left out (``smem``, ``cmem``), so every field defaults to 0.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["KernelResources", "parse_ptxas_report"]


@dataclass(frozen=True)
class KernelResources:
    """What ptxas allocated for one kernel.

    Attributes:
        name: the entry function's name.
        arch: the target ptxas compiled for (``"sm_90a"``).
        registers: 32-bit registers per thread.
        barriers: named barriers used.
        stack_frame_bytes, spill_store_bytes, spill_load_bytes: per thread.
        shared_bytes: static shared memory per block (dynamic shared memory is not known to ptxas).
        constant_bytes: bytes per constant bank, e.g. ``{0: 360}`` (bank 0 holds the parameters).
    """

    name: str
    arch: str
    registers: int = 0
    barriers: int = 0
    stack_frame_bytes: int = 0
    spill_store_bytes: int = 0
    spill_load_bytes: int = 0
    shared_bytes: int = 0
    constant_bytes: dict[int, int] = field(default_factory=dict)

    @property
    def spills(self) -> bool:
        """True if ptxas spilled registers to local memory."""
        return self.spill_store_bytes > 0 or self.spill_load_bytes > 0

    @property
    def clean(self) -> bool:
        """No spills and no stack frame: what every tilevm kernel must reach."""
        return not self.spills and self.stack_frame_bytes == 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (constant banks keyed by strings)."""
        data = asdict(self)
        data["constant_bytes"] = {str(k): v for k, v in self.constant_bytes.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KernelResources:
        """The inverse of :meth:`to_json`."""
        fields = dict(data)
        fields["constant_bytes"] = {int(k): int(v) for k, v in data["constant_bytes"].items()}
        return cls(**fields)


_COMPILING = re.compile(r"Compiling entry function '([^']+)' for '([^']+)'")
_PROPERTIES = re.compile(r"Function properties for (\S+)")
_FRAME = re.compile(
    r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_BARRIERS = re.compile(r"used (\d+) barriers")
_SMEM = re.compile(r"(\d+) bytes smem")
_CMEM = re.compile(r"(\d+) bytes cmem\[(\d+)\]")


def parse_ptxas_report(log: str) -> dict[str, KernelResources]:
    """One :class:`KernelResources` per entry function found in an NVRTC/ptxas log, by name.

    Lines that are not part of the report (warnings, timings, module-level ``gmem`` totals) are
    ignored. A log without a report (e.g. compiled without ``-v``) gives an empty dict.
    """
    records: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    properties_of: str | None = None
    for line in log.splitlines():
        if m := _COMPILING.search(line):
            current = records.setdefault(m.group(1), {"name": m.group(1), "arch": m.group(2)})
            continue
        if m := _PROPERTIES.search(line):
            # Device functions that were not inlined get properties too; keep only entries.
            properties_of = m.group(1)
            continue
        if m := _FRAME.search(line):
            if current is not None and properties_of == current["name"]:
                current["stack_frame_bytes"] = int(m.group(1))
                current["spill_store_bytes"] = int(m.group(2))
                current["spill_load_bytes"] = int(m.group(3))
            continue
        if current is not None and (m := _USED.search(line)):
            current["registers"] = int(m.group(1))
            if b := _BARRIERS.search(line):
                current["barriers"] = int(b.group(1))
            if s := _SMEM.search(line):
                current["shared_bytes"] = int(s.group(1))
            current["constant_bytes"] = {int(bank): int(n) for n, bank in _CMEM.findall(line)}
            current = None  # the "Used" line closes an entry's report
    return {name: KernelResources(**fields) for name, fields in records.items()}
