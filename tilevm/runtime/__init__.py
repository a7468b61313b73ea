"""tilevm.runtime."""
