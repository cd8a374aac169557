"""Mini-batch Adam for the models trained here in numpy (make_models.py, digits_encoder.py)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LossAndGrads = Callable[[np.ndarray, np.ndarray], tuple[float, dict[str, np.ndarray]]]


def train(params: dict[str, np.ndarray], loss_and_grads: LossAndGrads, x: np.ndarray, y: np.ndarray,
          rng: np.random.Generator, epochs: int, lr: float, batch: int = 32) -> None:
    """Update `params` in place over `epochs` shuffled passes of batches of `batch` samples."""
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}
    step, beta1, beta2 = 0, 0.9, 0.999
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            chosen = order[start:start + batch]
            _, grads = loss_and_grads(x[chosen].astype(np.float64), y[chosen])
            step += 1
            for k, g in grads.items():
                m, v = moments[k]
                m[:] = beta1 * m + (1 - beta1) * g
                v[:] = beta2 * v + (1 - beta2) * g * g
                m_hat, v_hat = m / (1 - beta1**step), v / (1 - beta2**step)
                params[k] -= lr * m_hat / (np.sqrt(v_hat) + 1e-8)
