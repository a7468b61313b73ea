"""Every kernel these tests build must read back from its text form (issue 4: the text form
round-trips every program built in the tests)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def every_built_program_round_trips(monkeypatch):
    from tilevm.frontend.kernel import KernelFunction
    from tilevm.frontend.text import parse
    from tilevm.ir.tile import print_kernel

    build = KernelFunction._build

    def build_and_read_back(self, constants):
        kernel = build(self, constants)
        text = print_kernel(kernel)
        assert parse(text) == kernel, f"the text form of {kernel.name} does not read back:\n{text}"
        return kernel

    monkeypatch.setattr(KernelFunction, "_build", build_and_read_back)
