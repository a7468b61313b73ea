"""Drop-in PyTorch ops and modules (imports torch): the low-bit-weight linear layer
(:class:`QuantLinear`, :func:`quantize_model`; the op is ``torch.ops.tilevm.quant_linear``, defined
in :mod:`tilevm.ops.quant_linear`, whose name this package does not shadow)."""

from tilevm.ops.quant_linear import QuantLinear, dequantize, quantize_model

__all__ = ["QuantLinear", "dequantize", "quantize_model"]
