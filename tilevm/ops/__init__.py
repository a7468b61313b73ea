"""Drop-in PyTorch ops and modules (imports torch): the low-bit-weight linear layer
(:class:`QuantLinear`, :func:`quantize_model`, ``torch.ops.tilevm.quant_linear``)."""

from tilevm.ops.quant_linear import QuantLinear, dequantize, quant_linear, quantize_model

__all__ = ["QuantLinear", "dequantize", "quant_linear", "quantize_model"]
