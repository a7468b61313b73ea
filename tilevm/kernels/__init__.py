"""tilevm.kernels."""
