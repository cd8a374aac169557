"""A small transformer encoder trained in numpy on scikit-learn's digits, each of the 8 pixel rows
a token, shipped as an embedding model: trained to classify, then the classifier head is dropped and
the model returns the L2-normalised 32-d pooled embedding, as sentence encoders are used. Unlike the
digits CNN's top-1, its cosine similarity moves measurably with each int8 choice (0.005-0.02% a
layer, ~0.3% all together), so the 0.1% and 1% budgets choose differently.

Pre-norm encoder: rows -> linear 8 -> 32 + position -> 2 x [x + attention(ln(x)) (2 heads);
x + mlp(ln(x)) (32 -> 64 -> 32, ReLU)] -> ln -> mean over rows (-> linear 32 -> 10 logits in
training). Forward and backward passes are written out below; each step returns its output and a
function that maps the gradient of the output to the gradient of the input (adding to the weights').
"""

from __future__ import annotations

from collections.abc import Callable

import adam  # models/ is on sys.path when this file runs as a script
import numpy as np
import onnx

from edgepart.graph.builder import GraphBuilder

ROWS, WIDTH, D, HEADS, HIDDEN, BLOCKS, CLASSES = 8, 8, 32, 2, 64, 2, 10
EPS = 1e-5

Backward = Callable[[np.ndarray], np.ndarray]


class DigitsEncoder:
    def __init__(self, rng: np.random.Generator) -> None:
        def dense(name: str, cin: int, cout: int) -> None:
            self.params[f"{name}.w"] = rng.standard_normal((cin, cout)) * np.sqrt(1 / cin)
            self.params[f"{name}.b"] = np.zeros(cout)

        self.params: dict[str, np.ndarray] = {}
        dense("embed", WIDTH, D)
        self.params["position"] = rng.standard_normal((ROWS, D)) * 0.1
        for block in range(BLOCKS):
            for norm in ("ln1", "ln2"):
                self.params[f"b{block}.{norm}.g"], self.params[f"b{block}.{norm}.b"] = np.ones(D), np.zeros(D)
            for part in ("q", "k", "v", "o"):
                dense(f"b{block}.{part}", D, D)
            dense(f"b{block}.fc1", D, HIDDEN)
            dense(f"b{block}.fc2", HIDDEN, D)
        self.params["ln.g"], self.params["ln.b"] = np.ones(D), np.zeros(D)
        dense("head", D, CLASSES)
        self.grads: dict[str, np.ndarray] = {}

    # -- steps: (output, backward) ---------------------------------------------------------------
    def _linear(self, x: np.ndarray, name: str) -> tuple[np.ndarray, Backward]:
        w, b = self.params[f"{name}.w"], self.params[f"{name}.b"]

        def backward(dy: np.ndarray) -> np.ndarray:
            self.grads[f"{name}.w"] += x.reshape(-1, x.shape[-1]).T @ dy.reshape(-1, dy.shape[-1])
            self.grads[f"{name}.b"] += dy.reshape(-1, dy.shape[-1]).sum(0)
            return dy @ w.T
        return x @ w + b, backward

    def _layer_norm(self, x: np.ndarray, name: str) -> tuple[np.ndarray, Backward]:
        g, b = self.params[f"{name}.g"], self.params[f"{name}.b"]
        centred = x - x.mean(-1, keepdims=True)
        inverse = 1 / np.sqrt((centred**2).mean(-1, keepdims=True) + EPS)
        normed = centred * inverse

        def backward(dy: np.ndarray) -> np.ndarray:
            self.grads[f"{name}.g"] += (dy * normed).reshape(-1, D).sum(0)
            self.grads[f"{name}.b"] += dy.reshape(-1, D).sum(0)
            dn = dy * g
            return inverse * (dn - dn.mean(-1, keepdims=True) - normed * (dn * normed).mean(-1, keepdims=True))
        return normed * g + b, backward

    def _attention(self, x: np.ndarray, name: str) -> tuple[np.ndarray, Backward]:
        n, head_dim = x.shape[0], D // HEADS

        def heads(t: np.ndarray) -> np.ndarray:  # n x rows x D -> n x heads x rows x head_dim
            return t.reshape(n, ROWS, HEADS, head_dim).transpose(0, 2, 1, 3)

        (q, back_q), (k, back_k), (v, back_v) = (self._linear(x, f"{name}.{p}") for p in "qkv")
        q, k, v = heads(q), heads(k), heads(v)
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        context = (weights @ v).transpose(0, 2, 1, 3).reshape(n, ROWS, D)
        out, back_o = self._linear(context, f"{name}.o")

        def backward(dy: np.ndarray) -> np.ndarray:
            d_context = heads(back_o(dy))
            d_weights, dv = d_context @ v.transpose(0, 1, 3, 2), weights.transpose(0, 1, 3, 2) @ d_context
            d_scores = weights * (d_weights - (d_weights * weights).sum(-1, keepdims=True)) / np.sqrt(head_dim)
            dq, dk = d_scores @ k, d_scores.transpose(0, 1, 3, 2) @ q

            def merged(t: np.ndarray) -> np.ndarray:
                return t.transpose(0, 2, 1, 3).reshape(n, ROWS, D)
            return back_q(merged(dq)) + back_k(merged(dk)) + back_v(merged(dv))
        return out, backward

    def _mlp(self, x: np.ndarray, name: str) -> tuple[np.ndarray, Backward]:
        hidden, back_1 = self._linear(x, f"{name}.fc1")
        active = hidden > 0
        out, back_2 = self._linear(hidden * active, f"{name}.fc2")
        return out, lambda dy: back_1(back_2(dy) * active)

    def _residual(self, x: np.ndarray, step: Callable, *names: str) -> tuple[np.ndarray, Backward]:
        """x + step(ln(x))."""
        normed, back_norm = self._layer_norm(x, names[0])
        change, back_step = step(normed, names[1])
        return x + change, lambda dy: dy + back_norm(back_step(dy))

    def forward(self, images: np.ndarray) -> tuple[np.ndarray, Backward]:
        x, back_embed = self._linear(images.reshape(-1, ROWS, WIDTH), "embed")
        x = x + self.params["position"]
        backs = []
        for block in range(BLOCKS):
            x, back_attention = self._residual(x, self._attention, f"b{block}.ln1", f"b{block}")
            x, back_mlp = self._residual(x, self._mlp, f"b{block}.ln2", f"b{block}")
            backs += [back_attention, back_mlp]
        x, back_norm = self._layer_norm(x, "ln")
        logits, back_head = self._linear(x.mean(1), "head")

        def backward(d_logits: np.ndarray) -> np.ndarray:
            dx = np.repeat(back_head(d_logits)[:, None] / ROWS, ROWS, axis=1)
            dx = back_norm(dx)
            for back in reversed(backs):
                dx = back(dx)
            self.grads["position"] += dx.sum(0)
            return back_embed(dx)
        return logits, backward

    def loss_and_grads(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        logits, backward = self.forward(images)
        logits = logits - logits.max(1, keepdims=True)
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        loss = -np.log(probs[np.arange(len(labels)), labels]).mean()
        probs[np.arange(len(labels)), labels] -= 1
        backward(probs / len(labels))
        return float(loss), self.grads

    def train(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, epochs: int = 60) -> None:
        adam.train(self.params, self.loss_and_grads, x, y, rng, epochs, lr=2e-3)

    def to_onnx(self) -> onnx.ModelProto:
        """The encoder as ONNX ops as exporters emit them (MatMul + Add, LayerNormalization, Softmax),
        batch 1, returning the normalised embedding."""
        p, b = self.params, GraphBuilder("digits_encoder")

        def linear(x: str, name: str) -> str:
            w = b.constant(f"{name}.weight", p[f"{name}.w"].astype(np.float32))
            y = b.op("MatMul", [x, w], (*b.shapes[x][:-1], p[f"{name}.w"].shape[1]), name=f"{name}.matmul")
            return b.op("Add", [y, b.constant(f"{name}.bias", p[f"{name}.b"].astype(np.float32))], b.shapes[y],
                        name=f"{name}.add")

        def layer_norm(x: str, name: str) -> str:
            g, shift = (b.constant(f"{name}.{k}", p[f"{name}.{k}"].astype(np.float32)) for k in "gb")
            return b.op("LayerNormalization", [x, g, shift], b.shapes[x], name=name, axis=-1, epsilon=EPS)

        def attention(x: str, name: str) -> str:
            head_dim = D // HEADS

            def heads(t: str) -> str:
                return b.transpose(b.reshape(t, (1, ROWS, HEADS, head_dim)), (0, 2, 1, 3))
            q, k, v = (heads(linear(x, f"{name}.{part}")) for part in "qkv")
            scale = b.constant(f"{name}.scale", np.array(1 / np.sqrt(head_dim), np.float32))
            weights = b.op("Softmax", [b.mul(b.matmul(q, b.transpose(k, (0, 1, 3, 2))), scale)],
                           (1, HEADS, ROWS, ROWS), name=f"{name}.softmax", axis=-1)
            context = b.transpose(b.matmul(weights, v), (0, 2, 1, 3))
            return linear(b.reshape(context, (1, ROWS, D)), f"{name}.o")

        x = b.reshape(b.input("image", (1, 1, ROWS, WIDTH)), (1, ROWS, WIDTH))
        x = b.add(linear(x, "embed"), b.constant("position", p["position"][None].astype(np.float32)))
        for block in range(BLOCKS):
            x = b.add(x, attention(layer_norm(x, f"b{block}.ln1"), f"b{block}"))
            mlp = linear(b.relu(linear(layer_norm(x, f"b{block}.ln2"), f"b{block}.fc1")), f"b{block}.fc2")
            x = b.add(x, mlp)
        pooled = b.mean(layer_norm(x, "ln"), axis=1)
        norm = b.op("ReduceL2", [pooled], (1, 1), name="norm", axes=[-1], keepdims=1)  # as torch exports normalize
        b.output(b.op("Div", [pooled, norm], b.shapes[pooled], name="embedding"))
        return b.build()

    def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
        """Top-1 of the trained classifier (the head the shipped model drops)."""
        return float(np.mean(self.forward(images.astype(np.float64))[0].argmax(1) == labels))
