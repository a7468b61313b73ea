"""tilevm.backend.cpu."""
