"""Where tilevm keeps compiled binaries, JIT objects and tuning results, and how it writes there.

Several processes (xdist workers, parallel compiles) share the directory: every file is written
whole to a temporary name and renamed into place, so a reader sees an old entry, a new one or none,
never half of one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["cache_dir", "write_atomic"]


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


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename,
    creating the folder if needed; the temporary file is removed if anything fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
