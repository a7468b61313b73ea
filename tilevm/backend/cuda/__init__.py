"""tilevm.backend.cuda."""
