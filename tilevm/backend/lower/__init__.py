"""Tile IR → Thread IR (DESIGN §1, §4): layout inference, shared-memory planning, the resource
checks, and a lowering rule per operation. :func:`lower` runs them all."""

from tilevm.backend.lower.abi import AbiParam, Workspace
from tilevm.backend.lower.errors import LoweringError
from tilevm.backend.lower.lower_kernel import LoweredKernel, lower
from tilevm.backend.lower.specialization import Specialization, TensorFacts

__all__ = ["AbiParam", "LoweredKernel", "LoweringError", "Specialization", "TensorFacts",
           "Workspace", "lower"]
