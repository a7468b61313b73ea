"""tilevm.frontend."""
