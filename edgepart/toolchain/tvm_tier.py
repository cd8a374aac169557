"""Load one compiled tier library and run it, with TVM's runtime only.

Importing this module never loads TVM's compiler: TVM is imported with TVM_USE_RUNTIME_LIB=1 (unless
the caller already imported it), so the same code runs on a device that has only the runtime.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_CUDA_RUNTIME = "libtvm_runtime_cuda.so"


def _import_tvm_runtime():
    """Import TVM in runtime-only mode. TVM reads the flag once, at import; it is then taken out of
    the environment again, so processes started later (a TVM build) do not inherit it."""
    if "tvm" in sys.modules:
        return sys.modules["tvm"]
    previous = os.environ.get("TVM_USE_RUNTIME_LIB")
    os.environ["TVM_USE_RUNTIME_LIB"] = "1"
    try:
        import tvm  # noqa: PLC0415 - deferred so the flag above is seen first
    finally:
        if previous is None:
            del os.environ["TVM_USE_RUNTIME_LIB"]
        else:
            os.environ["TVM_USE_RUNTIME_LIB"] = previous
    return tvm


def import_runtime(device: str = "cpu"):
    """TVM's runtime, with the CUDA runtime library loaded first for a CUDA tier (the CUDA module
    loader and its functions live in a library of their own)."""
    tvm = _import_tvm_runtime()
    if device == "cuda":
        ctypes.CDLL(str(Path(tvm.__file__).parent / "lib" / _CUDA_RUNTIME), mode=ctypes.RTLD_GLOBAL)
    return tvm


class TvmTier:
    """A tier library loaded on one device; `run` maps numpy inputs to numpy outputs (one call at a
    time: on this host's CPU calls share their input buffers)."""

    def __init__(self, library: str | Path, device: str = "cpu", device_id: int = 0, session=None) -> None:
        """`session`: a TVM RPC session; the library is uploaded and runs on the remote device."""
        tvm = import_runtime(device if session is None else "cpu")
        from tvm.runtime.vm import VirtualMachine  # noqa: PLC0415

        self._tvm = tvm
        if session is None:
            self.device = tvm.runtime.device(device, device_id)
            self.module = tvm.runtime.load_module(str(Path(library).resolve()))
        else:
            session.upload(str(library))
            self.device = session.device(device, device_id)
            self.module = session.load_module(Path(library).name)
        self.vm = VirtualMachine(self.module, self.device)
        self._main = self.vm["main"]  # looked up once: a lookup per run costs about a microsecond
        self._host_memory = session is None and device == "cpu"
        self._staging: list[tuple[np.ndarray, object]] = []  # per input: aligned host buffer, TVM view of it

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not self._host_memory:
            return [_array(t, lambda x: x.numpy()) for t in _flatten(self._main(*self._device_tensors(inputs)))]
        # On this host's CPU the inputs are copied into buffers TVM already wraps, and outputs read
        # through DLPack: tvm.runtime.tensor() and .numpy() cost ~20 and ~8 us each, more than a
        # small tier's kernels (the digits CNN runs in 13 us).
        result = self._main(*[self._staged(i, x) for i, x in enumerate(inputs)])
        return [_array(t, lambda x: np.from_dlpack(x).copy()) for t in _flatten(result)]

    def _staged(self, index: int, value: np.ndarray):
        """A TVM tensor holding `value`, in a reused buffer aligned as TVM's kernels require."""
        value = np.asarray(value)
        if index == len(self._staging) or self._staging[index][0].shape != value.shape \
                or self._staging[index][0].dtype != value.dtype:
            buffer = _aligned_empty(value.shape, value.dtype)
            entry = (buffer, self._tvm.runtime.from_dlpack(buffer))
            self._staging[index:index + 1] = [entry]
        buffer, view = self._staging[index]
        np.copyto(buffer, value)
        return view

    def sync(self) -> None:
        self.device.sync()

    def time(self, inputs: Sequence[np.ndarray], number: int, repeat: int) -> list[float]:
        """Seconds per run, `repeat` times, each the mean of `number` back-to-back runs timed on the
        device by TVM's time_evaluator (no Python in the loop; over RPC the form that times on the board)."""
        self.set_inputs(inputs)
        timer = self.vm.time_evaluator("invoke_stateful", self.device, number=number, repeat=repeat)
        return [float(r) for r in timer("main").results]

    def time_after_idle(self, inputs: Sequence[np.ndarray], gap_s: float, repeat: int) -> list[float]:
        """Seconds of single runs, `repeat` times, each after the device idled `gap_s` (time_evaluator's
        cool-down, so on a remote board too)."""
        self.set_inputs(inputs)
        timer = self.vm.time_evaluator("invoke_stateful", self.device, number=1, repeat=repeat,
                                       cooldown_interval_ms=max(1, round(gap_s * 1e3)), repeats_to_cooldown=1)
        return [float(r) for r in timer("main").results]

    def set_inputs(self, inputs: Sequence[np.ndarray]) -> None:
        self.vm.set_input("main", *self._device_tensors(inputs))

    def _device_tensors(self, inputs: Sequence[np.ndarray]) -> list:
        return [self._tvm.runtime.tensor(np.ascontiguousarray(x), self.device) for x in inputs]

    def run_stateful(self) -> None:
        """One run on the inputs of the last set_inputs (for energy windows)."""
        self.vm.invoke_stateful("main")


def _aligned_empty(shape: tuple[int, ...], dtype: np.dtype, alignment: int = 64) -> np.ndarray:
    size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    raw = np.empty(size + alignment, np.uint8)
    start = (-raw.ctypes.data) % alignment
    return raw[start:start + size].view(dtype).reshape(shape)


def _array(value, convert) -> np.ndarray:
    """A TVM tensor through `convert`; a scalar a function returned (a shape value, say) as a 0-d array."""
    return convert(value) if hasattr(value, "numpy") else np.asarray(value)


def _flatten(result) -> list:
    """The outputs of a call: tensors, scalars, and shapes (a tier output computed by Shape comes
    back as a tuple of ints: one int64 array, not one output per dimension), nested tuples unpacked."""
    if hasattr(result, "numpy") or np.isscalar(result):
        return [result]
    if type(result).__name__ == "Shape" and isinstance(result, tuple):  # tvm_ffi's Shape
        return [np.array(result, dtype=np.int64)]
    items = []
    for item in result:
        items.extend(_flatten(item))
    return items
