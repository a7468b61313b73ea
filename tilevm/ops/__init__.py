"""Drop-in PyTorch ops and modules (imports torch): the low-bit-weight linear layer
(:class:`QuantLinear` in :mod:`tilevm.ops.quant_linear`, :func:`quantize_model` in
:mod:`tilevm.ops.model_quantization`) and its ops ``torch.ops.tilevm.quant_linear`` and
``torch.ops.tilevm.prepared_linear`` (:mod:`tilevm.ops.linear_ops`)."""

from tilevm.ops.model_quantization import quantize_model
from tilevm.ops.quant_linear import QuantLinear, dequantize

__all__ = ["QuantLinear", "dequantize", "quantize_model"]
