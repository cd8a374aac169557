"""edgepart's cache folder: built runtimes, the CUDA driver stand-in, tuning databases."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(create: bool = False) -> Path:
    """$EDGEPART_CACHE, else ~/.cache/edgepart; `create` makes it (and its parents) on first use."""
    folder = Path(os.environ.get("EDGEPART_CACHE", Path.home() / ".cache" / "edgepart"))
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder
