"""A build folder is replaced whole or not at all: compile writes into a staging folder beside it
and swaps it in when complete; a failure, an interrupt or a kill leaves the previous build."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgepart import schema


@contextmanager
def staged(out_dir: Path) -> Iterator[Path]:
    """A fresh staging folder for `out_dir`: swapped in for it when the block completes, removed
    when it raises (any exception, an interrupt too)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{os.getpid()}.", dir=out_dir.parent))
    staging.chmod(0o777 & ~schema.current_umask())  # mkdtemp makes 0700; the build folder is meant to be shared
    try:
        yield staging
        _replace(out_dir, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _remove_abandoned_staging(out_dir: Path) -> None:
    """Staging folders of this build left by a compile that was killed (SIGKILL leaves no chance to
    clean up): named .<build>.<pid>.<random>, removed when that process is gone."""
    for folder in out_dir.parent.glob(f".{glob.escape(out_dir.name)}.*.*"):
        pid = folder.name[len(out_dir.name) + 2:].split(".", 1)[0]
        if folder.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _replace(out_dir: Path, staging: Path) -> None:
    """Swap the finished staging folder in; the old build is removed only after the swap."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
        os.replace(out_dir, old / "build")
    os.replace(staging, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
