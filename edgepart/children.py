"""Child processes edgepart starts (TVM builds, tier processes) never outlive it."""

from __future__ import annotations


def die_with_parent() -> None:
    """preexec_fn: on Linux the child gets SIGTERM when its parent dies, even by SIGKILL."""
    import ctypes  # noqa: PLC0415
    import signal  # noqa: PLC0415

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
