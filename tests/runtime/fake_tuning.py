"""A fake GPU for the autotuner's measurements (tilevm.runtime.tuning_device.TuningDevice): its
memory is host memory (buffers are HostTensors), a launch runs the candidate's configuration on
the reference interpreter, and its clock advances by a time the test chooses per configuration.
It logs every launch (with the outputs' contents and the buffers it was given), L2 flush and
copy, so that tests can see what the tuner did between runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tilevm.ir.host_tensor import HostTensor
from tilevm.runtime.tuning_device import TuningDevice, TuningEvent


def _copy(t: HostTensor) -> HostTensor:
    return HostTensor(t.data.copy(), t.dtype, t.shape, t.strides, t.offset)


class FakeEvent(TuningEvent):
    def __init__(self, device: FakeTuningDevice) -> None:
        self.device, self.time = device, None

    def record(self) -> None:
        self.time = self.device.clock

    def elapsed_ms(self, end: TuningEvent) -> float:
        assert self.time is not None and end.time is not None, "an event was never recorded"
        return end.time - self.time


class FakeTuningDevice(TuningDevice):
    """``times(config) -> ms`` per launch; ``output_names``: parameters whose contents each
    launch records before it runs."""

    def __init__(self, times: Callable[[dict[str, Any]], float], output_names=(),
                 name: str = "Fake GPU", compute_capability=(9, 0), driver: str = "13.0",
                 reset: bool = True) -> None:
        self.times, self.output_names = times, set(output_names)
        self.name, self.compute_capability, self.driver = name, compute_capability, driver
        self.reset_outputs = reset
        self.clock = 0.0
        self.log: list[tuple] = []

    def to_device(self, host: HostTensor) -> HostTensor:
        return _copy(host)

    def copy(self, dst: HostTensor, src: HostTensor) -> None:
        self.log.append(("copy", id(dst)))
        if self.reset_outputs:
            dst.data[:] = src.data

    def to_host(self, buffer: HostTensor) -> HostTensor:
        return _copy(buffer)

    def launch(self, kernel: Any, config: dict[str, Any], artifact: Any, args: tuple) -> None:
        # what the real device would launch: a cubin compiled for this GPU
        assert artifact.cubin[:4] == b"\x7fELF" and artifact.description["target"] == self.arch
        params = [p.name for p in kernel.ir(**config).params]
        before = {n: a.to_numpy().copy() for n, a in zip(params, args)
                  if n in self.output_names}
        self.log.append(("launch", dict(config), before, tuple(id(a) for a in args)))
        kernel(*args, device="interp", **config)
        self.clock += self.times(config)

    def flush_l2(self) -> None:
        self.log.append(("flush",))

    def event(self) -> FakeEvent:
        return FakeEvent(self)

    def launches(self) -> list[tuple]:
        return [e for e in self.log if e[0] == "launch"]
