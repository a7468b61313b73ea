"""Where tilevm keeps compiled binaries, JIT objects and tuning results."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """``$TILEVM_CACHE_DIR`` if set, else the user cache directory (``~/.cache/tilevm`` on Linux).

    The directory is not created here; writers create what they need.
    """
    override = os.environ.get("TILEVM_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    try:
        import platformdirs
    except ImportError:  # a GPU machine's own Python may lack it
        return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "tilevm"
    return Path(platformdirs.user_cache_dir("tilevm", appauthor=False))
