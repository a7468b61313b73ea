"""tilevm.backend.lower."""
