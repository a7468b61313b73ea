"""tilevm.ops."""
