"""Estimated drops for models too big to run every choice: probes and gains.

Running every choice of a 300-layer encoder on 16 samples is about 900 whole-model runs (10 minutes
on this host); a ViT-B/16 would take hours. So when that does not fit the time, sensitivity runs
every choice only at probe layers spread evenly through the model, and estimates the others:

- a choice's size is the relative energy of the change it makes where it enters the model,
  r2 = sum |delta|^2 / sum |x|^2 (codecs and lower precisions add small, noise-like errors);
- for small changes a smooth metric's drop grows with r2 (cosine: 1 - cos is quadratic in the
  output change, which is linear in delta), so drop = gain x r2, with a gain that depends on where
  the change enters: each probe run gives the gain at its position;
- a choice elsewhere takes the gain of the probes of its own role (a layer of the same op and
  shapes), interpolated by position, else that of every probe of its kind (Gains).

The estimates are marked as such in the file. Top-1 accuracy is not smooth in r2, so estimates for
that metric are rougher; the composed plan is measured for real by `verify --validate-accuracy`.
"""

from __future__ import annotations

import math
import statistics

import numpy as np

from edgepart.graph import LayerGraph

PROBE_SHARE = 0.7  # of the time left, spent on probe runs (the rest: the other choices' deltas)


def relative_energy(perturbation: dict[str, np.ndarray], values: dict[str, np.ndarray]) -> float:
    """sum |delta|^2 / sum |x|^2 over the perturbed tensors and samples (0 for an all-zero x); the
    finite values of x only (an attention mask's -inf entries are no scale for a change)."""
    change = sum(float(np.sum(np.square(delta, dtype=np.float64))) for delta in perturbation.values())
    size = sum(float(np.sum(np.square(np.where(np.isfinite(values[name]), values[name], 0), dtype=np.float64)))
               for name in perturbation)
    return change / size if size > 0 else 0.0


def probe_spacing(choices: int, groups: int, run_s: float, seconds_left: float) -> int:
    """Every how many-th group to run every choice of: 1 (all of them) when that fits the time."""
    if groups == 0 or choices * run_s <= seconds_left:
        return 1
    per_group = max(1.0, choices / groups)
    affordable = max(1, int(PROBE_SHARE * max(seconds_left, 0.0) / (run_s * per_group)))
    return max(1, math.ceil(groups / affordable))


class Gains:
    """Drop per unit of relative energy, from the probe runs, by kind of choice and position in the
    model's order, and also by the role of the layer where the change enters. Kinds are kept apart:
    a layer's int8 error is correlated with its signal (quantised weights), a codec's is noise-like,
    and the same energy costs them differently (on chain_cnn a conv's int8 drop was 10x what a
    codec's gain at the same place predicted). Roles (`role`: the op and the shapes it reads and
    makes) tell a transformer's feed-forward products from its query products: a choice takes the
    gain of probes of its own role where there are any, interpolated by position, else of its kind.
    On all-MiniLM-L6-v2 (every 8th layer probed) that put 50% of the estimates within 2x of the run
    drop, against 32% by position alone."""

    def __init__(self) -> None:
        self._measured: dict[tuple, dict[int, list[float]]] = {}  # (kind,) or (kind, role) -> position -> gains
        self._table: dict[tuple, tuple[list[int], list[float]]] = {}  # the same -> sorted positions, median gains

    def add(self, kind: str, position: int, drop: float, r2: float, role: str | None = None) -> None:
        if 0 < r2 < math.inf:
            for key in ((kind,), (kind, role)) if role is not None else ((kind,),):
                self._measured.setdefault(key, {}).setdefault(position, []).append(max(drop, 0.0) / r2)
                self._table.pop(key, None)

    def drop(self, kind: str, position: int, r2: float, role: str | None = None) -> float:
        """The estimated drop of a change of relative energy r2 of this kind entering at `position`
        (in a layer of `role`)."""
        key = (kind, role) if (kind, role) in self._measured else (kind,)
        if r2 <= 0 or key not in self._measured:
            return 0.0
        return self._gain(key, position) * r2

    def _gain(self, key: tuple, position: int) -> float:
        if key not in self._table:
            measured = self._measured[key]
            ordered = sorted(measured)
            self._table[key] = (ordered, [statistics.median(measured[p]) for p in ordered])
        positions, gain = self._table[key]
        return float(np.interp(position, positions, gain))  # constant beyond the first and last probe


def role(graph: LayerGraph, layer: str | None) -> str:
    """What kind of layer a change enters at, for sharing gains: its op and the shapes of what it
    reads and makes ("input" for a graph input)."""
    if layer is None:
        return "input"
    node = graph.node(layer)

    def shapes(names: tuple[str, ...]) -> str:
        return ",".join("x".join(map(str, graph.tensors[t].shape)) if t in graph.tensors else "-" for t in names)
    return f"{node.op_type}({shapes(node.inputs)})->({shapes(node.outputs)})"
