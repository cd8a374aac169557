"""The profilers behind `edgepart profile`, one interface: a profiler checks its options' ranges
when it is built (in the command's words, before a model is loaded), says how many progress units
profiling a model takes (`rounds`), and turns the model into a Profile document (`profile`).

By name (`profiler`): "onnxruntime" measures this host, lower precisions on the model converted to
them, optionally checking the layer times on segments cut out; "tvm" measures the artifact compile
builds on this host, "tvm-rpc" on a board over TVM RPC; "predicted" predicts from a device profile,
optionally fitted first to a measured profile of another model on that device.
"""

from __future__ import annotations

import logging
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from edgepart.compress import data as datasets
from edgepart.compress.codecs import PRECISIONS
from edgepart.errors import BadInputError, ToolError
from edgepart.graph import LoadedModel
from edgepart.hardware.devices import load_device
from edgepart.profile import document, measure, tvm_profiler
from edgepart.profile.calibrate import calibrated_on
from edgepart.profile.converted import measure_precision
from edgepart.profile.document import Profile
from edgepart.profile.ort_profiler import RunOptions

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
# Rounds are capped so the documented time bounds hold; a prediction may be for a larger machine
# than this host.
MAX_ROUNDS = 10_000
MAX_SEGMENTS = 1_000
MAX_PREDICTED_THREADS = 1_024
INT8_SEEDED_SAMPLES = 16  # int8 ranges without --data


def _ignore(units: int) -> None:
    """No progress shown."""


class Profiler(ABC):
    """A way to profile a model."""

    label: ClassVar[str]  # what a progress bar says while it runs

    @abstractmethod
    def rounds(self, loaded: LoadedModel) -> int:
        """The progress units `profile` reports for this model, all told."""

    @abstractmethod
    def profile(self, loaded: LoadedModel, progress: Progress = _ignore) -> Profile:
        """The profile document of `loaded`, telling `progress` the units done as they finish."""


@dataclass(frozen=True)
class OnnxruntimeProfiler(Profiler):
    """This host measured with onnxruntime: fp32 always, each lower precision in `precisions` on the
    model converted to it (int8 ranges from `int8_data`, else seeded inputs); `check_segments`
    random segments cut out and timed against what their layers add up to."""

    label: ClassVar[str] = "profiling"
    device: str = "local"
    options: RunOptions = RunOptions()
    precisions: tuple[str, ...] = ("fp32",)
    check_segments: int = 0
    int8_data: str | None = None

    def __post_init__(self) -> None:
        _check_measuring(self.options)
        _check_range("--check-segments", self.check_segments, 0, MAX_SEGMENTS)

    @property
    def lower_precisions(self) -> list[str]:
        return [p for p in self.precisions if p != "fp32"]

    def rounds(self, loaded: LoadedModel) -> int:
        return (measure.rounds(loaded, self.options, self.check_segments)
                + len(self.lower_precisions) * measure.rounds(loaded, self.options))

    def profile(self, loaded: LoadedModel, progress: Progress = _ignore) -> Profile:
        device = load_device(self.device, "--device")
        if device.name != "local":
            raise BadInputError(f"device '{device.name}' is not this host: measure it on the board with --backend tvm "
                                "--rpc HOST:PORT, or predict it with --predict")
        unknown = sorted(set(self.precisions) - set(PRECISIONS))
        if unknown:
            raise BadInputError(f"--precision: unknown precision '{unknown[0]}'; choose from {', '.join(PRECISIONS)}")
        calibration = None
        if "int8" in self.lower_precisions:
            calibration = (datasets.load(self.int8_data, loaded) if self.int8_data
                           else datasets.seeded(loaded, INT8_SEEDED_SAMPLES))
        measurement = measure.measure(loaded, self.options, self.check_segments, progress=progress)
        converted = {p: measure_precision(loaded, p, self.options, calibration, progress)
                     for p in self.lower_precisions}
        return Profile.of(document.measured_document(loaded, device, self.options, measurement, converted,
                                                     measure.session_energy(loaded, self.options)))


@dataclass(frozen=True)
class TvmProfiler(Profiler):
    """The artifact compile builds for `target` (default x86-64), timed by TVM on this host or,
    with `rpc` (HOST:PORT), on a board over TVM RPC (which then needs `target`: the board's)."""

    label: ClassVar[str] = "profiling (tvm)"
    device: str = "local"
    options: RunOptions = RunOptions()
    target: str | None = None
    rpc: str | None = None
    tracker: str | None = None  # a farm of boards (edgepart.profile.farm), with `key`
    key: str | None = None

    def __post_init__(self) -> None:
        _check_measuring(self.options)
        if self.rpc and not self.target:
            raise BadInputError("--rpc needs --target, the preset the remote board runs (e.g. aarch64, rpi4)")
        if self.tracker and not self.target:
            raise BadInputError("--tracker needs --target, the preset the key's boards run (e.g. aarch64, rpi4)")
        if bool(self.tracker) != bool(self.key):
            raise BadInputError("--tracker and --key go together: the tracker, and the key its boards registered under")
        if self.tracker and self.rpc:
            raise BadInputError("--rpc names one board and --tracker a farm of them; drop one")

    def rounds(self, loaded: LoadedModel) -> int:
        return tvm_profiler.rounds(self.options)

    def profile(self, loaded: LoadedModel, progress: Progress = _ignore) -> Profile:
        return self.profile_many([loaded], progress)[0] if self.tracker else self.measured(loaded, progress)

    def measured(self, loaded: LoadedModel, progress: Progress = _ignore, board=None) -> Profile:
        device = load_device(self.device, "--device")
        measurement = tvm_profiler.measure_tvm(loaded, self.target or "x86-64", self.options, self.rpc, progress,
                                               board)
        return Profile.of(document.tvm_document(loaded, device, self.options, measurement))

    def profile_many(self, models: list[LoadedModel], progress: Progress = _ignore,
                     done: Callable[[Any], None] = lambda outcome: None,
                     started: Callable[[Any, str], None] = lambda outcome, board: None) -> list[Profile]:
        """Each model on a board of the tracker's key, as many at once as the key has boards; a model
        whose board drops out is measured on another. ToolError naming the first model that failed."""
        from edgepart.profile import farm  # noqa: PLC0415

        boards = farm.Farm(self.tracker, self.key)

        def work(loaded: LoadedModel, board: farm.Board) -> Profile:
            return self.measured(loaded, progress, board)

        with tempfile.TemporaryDirectory(prefix="edgepart-farm-") as tmp:
            speeds = farm.BoardSpeeds(str(models[0].path), tvm_profiler.reference_run(models[0], self.target,
                                                                                     Path(tmp)))
            outcomes = farm.spread(boards, models, work, done, started, speeds)
        failed = next((o for o in outcomes if o.error), None)
        if failed is not None:
            raise ToolError(f"{failed.unit.path}: profiling on the farm failed: {failed.error}")
        board_speeds = speeds.summary()
        for address in board_speeds["flagged"]:
            log.warning("board %s ran the reference %.0f%% %s than the key's median: its profiles are flagged",
                        address, 100 * abs(board_speeds["seconds"][address] / board_speeds["median_s"] - 1),
                        "slower" if board_speeds["seconds"][address] > board_speeds["median_s"] else "faster")
        # which board measured each, where it was lost before, how fast the boards are
        profiles = [outcome.result.on_farm({"tracker": self.tracker, "key": self.key, "board": outcome.board,
                                            "lost_on": outcome.lost_on, "board_speeds": board_speeds,
                                            "flagged": outcome.board in board_speeds["flagged"]})
                    for outcome in outcomes]
        return profiles


@dataclass(frozen=True)
class PredictedProfiler(Profiler):
    """Per-layer times predicted from a device profile for a run on `threads` threads; with
    `calibrate_with`, the device's efficiencies fitted first to that measured profile."""

    label: ClassVar[str] = "predicting"
    device: str = "local"
    precisions: tuple[str, ...] = ("fp32",)
    threads: int = 1
    calibrate_with: str | None = None

    def __post_init__(self) -> None:
        _check_range("--threads", self.threads, 1, MAX_PREDICTED_THREADS)

    def rounds(self, loaded: LoadedModel) -> int:
        return 1  # the prediction, done at once

    def profile(self, loaded: LoadedModel, progress: Progress = _ignore) -> Profile:
        device = load_device(self.device, "--device")
        if self.calibrate_with:
            device = calibrated_on(device, self.calibrate_with)
        predicted = Profile.of(document.predicted_document(loaded, device, list(self.precisions), self.threads))
        progress(1)
        return predicted


def _over_rpc(*, rpc: str, **options: Any) -> TvmProfiler:
    """The "tvm-rpc" profiler: TvmProfiler with the board's HOST:PORT required."""
    return TvmProfiler(rpc=rpc, **options)


PROFILERS: dict[str, Callable[..., Profiler]] = {
    "onnxruntime": OnnxruntimeProfiler, "tvm": TvmProfiler, "tvm-rpc": _over_rpc, "predicted": PredictedProfiler}


def profiler(name: str, **options: Any) -> Profiler:
    """The profiler called `name` (PROFILERS), built with `options`: its fields, which it checks."""
    if name not in PROFILERS:
        raise BadInputError(f"unknown profiler '{name}'; choose from {', '.join(PROFILERS)}")
    return PROFILERS[name](**options)


def _check_measuring(options: RunOptions) -> None:
    # More threads than this host's CPUs only oversubscribe them.
    _check_range("--threads", options.threads, 1, os.cpu_count() or 1, " (this host's CPUs)")
    _check_range("--warmup", options.warmup, 0, MAX_ROUNDS)
    _check_range("--repeat", options.repeat, 1, MAX_ROUNDS)


def _check_range(option: str, value: int, least: int, most: int, bound: str = "") -> None:
    if not least <= value <= most:
        raise BadInputError(f"{option} {value}: must be from {least} to {most}{bound}")
