"""Timing whole onnxruntime sessions: warm-ups, then wall clock (and thread CPU time) per run.

Several sessions are timed round-robin so that all see the same machine state, in blocks of
HOT_RUNS runs of one session of which only the last counts. A session run straight after another
finds its weights evicted from the caches: on the transformer example a 7-layer part ran 5% slower
after the whole model, 2x slower after 16 MB of other data, and by how much depended on how much
it had to reload, which no per-layer sum predicts. Every time in a profile is of a session run
hot, as a tier running its own part of the model back to back is.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import onnx

from edgepart.errors import ToolError
from edgepart.graph import sessions
from edgepart.profile.ort_profiler import HOT_RUNS, RunOptions, Stats, session_options


def time_session(model: onnx.ModelProto, feeds: dict, options: RunOptions,
                 progress: Callable[[int], None] = lambda n: None) -> tuple[Stats, Stats | None]:
    """Wall-clock (and, for one thread, thread CPU time) of `session.run` after warm-ups."""
    try:
        session = sessions.session(model, session_options(options, options.optimization))
        for _ in range(options.warmup):
            session.run(None, feeds)
        wall, cpu = [], []
        for _ in range(options.repeat):
            start_wall, start_cpu = time.perf_counter(), time.thread_time()
            session.run(None, feeds)
            cpu.append(time.thread_time() - start_cpu)
            wall.append(time.perf_counter() - start_wall)
            progress(1)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ToolError(f"onnxruntime failed to run the model: {str(exc).splitlines()[0]}") from None
    return Stats.of(wall), (Stats.of(cpu) if options.threads == 1 else None)


def time_interleaved(runs: list[tuple[onnx.ModelProto, dict]], options: RunOptions,
                     progress: Callable[[int], None] = lambda n: None) -> list[Stats]:
    """Wall clock of several sessions run round-robin, so all see the same machine state (a
    baseline timed this way cancels the host's drift in speed between measurements)."""
    return [Stats.of(times) for times in time_rounds(runs, options, progress)]


def time_rounds(runs: list[tuple[onnx.ModelProto, dict]], options: RunOptions,
                progress: Callable[[int], None] = lambda n: None) -> list[list[float]]:
    """Seconds per measured round of each session, the sessions run round-robin after warm-ups, each
    HOT_RUNS times in a row with the last run timed."""
    try:
        opened = [(sessions.session(m, session_options(options, options.optimization)), feeds) for m, feeds in runs]
        samples: list[list[float]] = [[] for _ in opened]
        for i in range(options.warmup + options.repeat):
            for (session, feeds), times in zip(opened, samples):
                for _ in range(HOT_RUNS - 1):
                    session.run(None, feeds)
                start = time.perf_counter()
                session.run(None, feeds)
                if i >= options.warmup:
                    times.append(time.perf_counter() - start)
            if i >= options.warmup:
                progress(1)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ToolError(f"onnxruntime failed to run the model: {str(exc).splitlines()[0]}") from None
    return samples


def paired_medians(samples: list[list[float]], reference: list[float]) -> list[float]:
    """Each session's median seconds, taken as its median ratio to `reference` (a session timed in
    the same rounds) times the reference's median. A shared host changes speed by up to 40% every
    few tenths of a second; the median of a mix of fast and slow rounds lands differently for each
    session, the ratio within a round does not (on the inception CNN, a part's median over the
    whole model's went from 0.50 to 0.44 between two checks; 0.48-0.50 as a per-round ratio)."""
    whole = np.asarray(reference)
    return [float(np.median(np.asarray(times) / whole) * np.median(whole)) for times in samples]


def scaled_progress(progress: Callable[[int], None], factor: float) -> Callable[[int], None]:
    """`progress` called with `factor` steps per step (whole steps, the remainder carried): a stage
    that runs as many rounds as fit in its time reports the steps the progress bar planned for it."""
    carried = 0.0

    def step(count: int) -> None:
        nonlocal carried
        carried += count * factor
        if carried >= 1:
            progress(int(carried))
            carried -= int(carried)
    return step
