"""tilevm.backend."""
