"""How much a compressed model's outputs are worth against the fp32 model's: the metrics that
sensitivity measures drops in and verify --validate-accuracy holds a build to."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgepart.errors import BadInputError

METRICS = {
    "accuracy": "top-1 accuracy against the labels (drop = fp32 accuracy - accuracy)",
    "agreement": "top-1 agreement with the fp32 model along the first output's last axis (drop = 1 - agreement)",
    "cosine": "cosine similarity with the fp32 outputs, mean over samples (drop = 1 - similarity)",
}
WORST_SCORE = {"accuracy": 0.0, "agreement": 0.0, "cosine": -1.0}


def scorer(metric: str, reference: dict[str, np.ndarray], labels: np.ndarray | None, source: str = "the data"
           ) -> Callable[[dict[str, np.ndarray]], float]:
    """A function from a run's outputs to the metric (higher is better); `source` names the labels' file.
    A sample whose outputs hold NaN or inf scores the worst there is (wrong class; similarity -1):
    an int8 layer fed an infinity, say, breaks the model rather than costing nothing."""
    first = next(iter(reference))
    if metric == "accuracy":
        classes = reference[first].reshape(len(labels), -1).shape[1]
        if labels.min(initial=0) < 0 or labels.max(initial=0) >= classes:
            raise BadInputError(f"{source}: labels: class indices must be from 0 to {classes - 1} (the model's "
                                f"output '{first}' has {classes} classes), got {labels.min()} to {labels.max()}")
        return lambda out: float(np.mean((out[first].reshape(len(labels), -1).argmax(axis=1) == labels)
                                         & _finite(out[first])))
    if metric == "agreement":
        expected = reference[first].argmax(axis=-1)

        def agreement(out: dict[str, np.ndarray]) -> float:
            agreed = (out[first].argmax(axis=-1) == expected).reshape(len(expected), -1).mean(axis=1)
            return float(np.mean(agreed * _finite(out[first])))
        return agreement
    flat_reference = np.concatenate([v.reshape(len(v), -1).astype(np.float64) for v in reference.values()], axis=1)

    def cosine(out: dict[str, np.ndarray]) -> float:
        flat = np.concatenate([out[k].reshape(len(out[k]), -1).astype(np.float64) for k in reference], axis=1)
        with np.errstate(invalid="ignore", over="ignore"):
            norms = np.linalg.norm(flat, axis=1) * np.linalg.norm(flat_reference, axis=1)
            similarity = np.sum(flat * flat_reference, axis=1) / np.where(norms > 0, norms, 1.0)
        return float(np.mean(np.where(_finite(flat), similarity, -1.0)))

    return cosine


def _finite(outputs: np.ndarray) -> np.ndarray:
    """Per sample (first axis): whether every value is finite."""
    return np.isfinite(outputs.reshape(len(outputs), -1)).all(axis=1)
