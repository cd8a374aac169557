"""Make the example models in this folder, deterministically (`make models`).

Four architectures with seeded random weights (a chain CNN, a residual CNN, an Inception-style
multi-branch CNN, a transformer encoder) and two models trained here, in numpy, on scikit-learn's
digits data set, saved with its calibration and held-out test splits so that accuracy budgets can
be measured for real: a CNN classifier (digits_calib.npz, digits_test.npz: images and labels) and a
transformer embedding model (digits_encoder.py; digits_encoder_calib.npz, digits_encoder_test.npz:
the same images, no labels, so the metric is cosine similarity).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import adam  # models/ is on sys.path when this file runs as a script
import numpy as np
import onnx
from digits_encoder import DigitsEncoder
from onnx import TensorProto

from edgepart.graph.builder import GraphBuilder

HERE = Path(__file__).resolve().parent


def chain_cnn() -> onnx.ModelProto:
    b = GraphBuilder("chain_cnn", seed=1)
    x = b.input("input", (1, 3, 96, 96))
    x = b.conv(x, 16, 3, name="conv1")
    x = b.conv(x, 32, 3, stride=2, name="conv2")
    x = b.conv(x, 64, 3, stride=2, name="conv3")
    x = b.conv(x, 64, 3, name="conv4")
    x = b.pool(x, "MaxPool", 2, 2)
    x = b.conv(x, 128, 3, name="conv5")
    x = b.gemm(b.flatten(b.global_pool(x)), 10, name="fc")
    b.output(b.softmax(x))
    return b.build()


def residual_cnn() -> onnx.ModelProto:
    b = GraphBuilder("residual_cnn", seed=2)
    x = b.conv(b.input("input", (1, 3, 96, 96)), 32, 3, stride=2, name="stem")
    x = b.pool(x, "MaxPool", 3, 2, pad=1)
    channels = 32
    for stage, (width, stride) in enumerate([(32, 1), (64, 2), (128, 2)], 1):
        for block in range(2):
            s = stride if block == 0 else 1
            name = f"stage{stage}.block{block}"
            y = b.conv(x, width, 3, stride=s, name=f"{name}.conv1")
            y = b.conv(y, width, 3, relu=False, name=f"{name}.conv2")
            shortcut = x if (s == 1 and channels == width) else b.conv(
                x, width, 1, stride=s, relu=False, name=f"{name}.downsample")
            x = b.relu(b.add(y, shortcut))
            channels = width
    b.output(b.gemm(b.flatten(b.global_pool(x)), 10, name="fc"))
    return b.build()


def inception_cnn() -> onnx.ModelProto:
    b = GraphBuilder("inception_cnn", seed=3)
    x = b.conv(b.input("input", (1, 3, 96, 96)), 32, 3, stride=2, name="stem1")
    x = b.pool(b.conv(x, 64, 3, name="stem2"), "MaxPool", 3, 2, pad=1)

    def inception(x: str, name: str, c1: int, c3: int, c5: int, cp: int) -> str:
        branch1 = b.conv(x, c1, 1, name=f"{name}.b1")
        branch3 = b.conv(b.conv(x, c3 // 2, 1, name=f"{name}.b3a"), c3, 3, name=f"{name}.b3b")
        branch5 = b.conv(x, c5 // 2, 1, name=f"{name}.b5a")
        branch5 = b.conv(b.conv(branch5, c5, 3, name=f"{name}.b5b"), c5, 3, name=f"{name}.b5c")
        branch_pool = b.conv(b.pool(x, "MaxPool", 3, 1, pad=1), cp, 1, name=f"{name}.bp")
        return b.concat([branch1, branch3, branch5, branch_pool])

    x = inception(x, "mixed1", 32, 48, 16, 16)
    x = b.pool(inception(x, "mixed2", 48, 64, 24, 24), "MaxPool", 3, 2, pad=1)
    x = inception(x, "mixed3", 64, 96, 32, 32)
    b.output(b.gemm(b.flatten(b.global_pool(x)), 10, name="fc"))
    return b.build()


def transformer_encoder() -> onnx.ModelProto:
    b = GraphBuilder("transformer_encoder", seed=4)
    ids = b.input("input_ids", (1, 64), TensorProto.INT64)
    x = b.embedding(ids, vocab=1000, d=128)
    for _ in range(2):
        x = b.encoder_layer(x, heads=4, hidden=256)
    x = b.mean(b.layer_norm(x), axis=1)
    b.output(b.gemm(x, 10, name="classifier"))
    return b.build()


# -- the trained model ------------------------------------------------------------------------

DIGITS_LAYERS = [("conv1", 16, 1), ("conv2", 32, 2), ("conv3", 32, 1)]  # name, channels, stride


def digits_split(seed: int = 0) -> dict[str, np.ndarray]:
    """scikit-learn's 8x8 digits, shuffled once: 1077 train, 180 calibration, 540 held-out test."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # N x 1 x 8 x 8 in [0, 1]
    order = np.random.default_rng(seed).permutation(len(images))
    images, labels = images[order], digits.target[order].astype(np.int64)
    return {
        "train_x": images[:1077], "train_y": labels[:1077],
        "calib_x": images[1077:1257], "calib_y": labels[1077:1257],
        "test_x": images[1257:], "test_y": labels[1257:],
    }


def _im2col(x: np.ndarray, k: int, stride: int) -> tuple[np.ndarray, int, int]:
    n, c, h, w = x.shape
    pad = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    cols = np.empty((n, c, k, k, oh, ow), x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * k * k), oh, ow


def _col2im(cols: np.ndarray, shape: tuple, k: int, stride: int, oh: int, ow: int) -> np.ndarray:
    n, c, h, w = shape
    pad = k // 2
    cols = cols.reshape(n, oh, ow, c, k, k).transpose(0, 3, 4, 5, 1, 2)
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), cols.dtype)
    for i in range(k):
        for j in range(k):
            xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += cols[:, :, i, j]
    return xp[:, :, pad:pad + h, pad:pad + w]


class DigitsCNN:
    """Three 3x3 conv + ReLU layers and two fully connected layers, trained with Adam in numpy."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.params: dict[str, np.ndarray] = {}
        cin = 1
        for name, cout, _ in DIGITS_LAYERS:
            self.params[f"{name}.w"] = rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2 / (cin * 9))
            self.params[f"{name}.b"] = np.zeros(cout)
            cin = cout
        for name, cin, cout in [("fc1", 32 * 4 * 4, 64), ("fc2", 64, 10)]:
            self.params[f"{name}.w"] = rng.standard_normal((cout, cin)) * np.sqrt(2 / cin)
            self.params[f"{name}.b"] = np.zeros(cout)

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        p, cache = self.params, []
        for name, cout, stride in DIGITS_LAYERS:
            cols, oh, ow = _im2col(x, 3, stride)
            out = cols @ p[f"{name}.w"].reshape(cout, -1).T + p[f"{name}.b"]
            cache.append((name, x.shape, cols, oh, ow, out > 0))
            x = np.maximum(out, 0).reshape(x.shape[0], oh, ow, cout).transpose(0, 3, 1, 2)
        flat = x.reshape(x.shape[0], -1)
        hidden = flat @ p["fc1.w"].T + p["fc1.b"]
        relu_hidden = np.maximum(hidden, 0)
        logits = relu_hidden @ p["fc2.w"].T + p["fc2.b"]
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        loss = -np.log(probs[np.arange(len(y)), y]).mean()
        grads: dict[str, np.ndarray] = {}
        d = probs.copy()
        d[np.arange(len(y)), y] -= 1
        d /= len(y)
        grads["fc2.w"], grads["fc2.b"] = d.T @ relu_hidden, d.sum(0)
        d = (d @ p["fc2.w"]) * (hidden > 0)
        grads["fc1.w"], grads["fc1.b"] = d.T @ flat, d.sum(0)
        d = (d @ p["fc1.w"]).reshape(x.shape)
        for name, shape, cols, oh, ow, active in reversed(cache):
            cout = p[f"{name}.w"].shape[0]
            d_out = d.transpose(0, 2, 3, 1).reshape(-1, cout) * active
            grads[f"{name}.w"] = (d_out.T @ cols).reshape(p[f"{name}.w"].shape)
            grads[f"{name}.b"] = d_out.sum(0)
            d = _col2im(d_out @ p[f"{name}.w"].reshape(cout, -1), shape, 3, int(shape[2] / oh), oh, ow)
        return float(loss), grads

    def train(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, epochs: int = 30) -> None:
        adam.train(self.params, self.loss_and_grads, x, y, rng, epochs, lr=3e-3)

    def to_onnx(self) -> onnx.ModelProto:
        b = GraphBuilder("digits_cnn")
        x = b.input("image", (1, 1, 8, 8))
        for name, cout, stride in DIGITS_LAYERS:
            x = b.conv(x, cout, 3, stride=stride, name=name,
                       params=(self.params[f"{name}.w"], self.params[f"{name}.b"]))
        x = b.relu(b.gemm(b.flatten(x), 64, name="fc1", params=(self.params["fc1.w"], self.params["fc1.b"])))
        b.output(b.gemm(x, 10, name="fc2", params=(self.params["fc2.w"], self.params["fc2.b"])))
        return b.build()


def digits_cnn(out: Path) -> tuple[onnx.ModelProto, float]:
    """Train on the digits split, save the split next to the model, return the model and its test accuracy."""
    split = digits_split()
    rng = np.random.default_rng(5)
    net = DigitsCNN(rng)
    net.train(split["train_x"], split["train_y"], rng)
    model = net.to_onnx()
    for part in ("calib", "test"):  # edgepart's data format: an array per model input, and labels
        np.savez_compressed(out / f"digits_{part}.npz", image=split[f"{part}_x"], labels=split[f"{part}_y"])
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    predictions = [int(np.argmax(session.run(None, {"image": img[None]})[0])) for img in split["test_x"]]
    return model, float(np.mean(np.array(predictions) == split["test_y"]))


def digits_encoder(out: Path) -> tuple[onnx.ModelProto, float]:
    """Train the encoder with a classifier head on the digits split; save it without the head and the
    split's images without labels; return the model and the trained classifier's test accuracy."""
    split = digits_split()
    rng = np.random.default_rng(7)
    net = DigitsEncoder(rng)
    net.train(split["train_x"], split["train_y"], rng)
    for part in ("calib", "test"):
        np.savez_compressed(out / f"digits_encoder_{part}.npz", image=split[f"{part}_x"])
    return net.to_onnx(), net.accuracy(split["test_x"], split["test_y"])


MODELS = {
    "chain_cnn": chain_cnn,
    "residual_cnn": residual_cnn,
    "inception_cnn": inception_cnn,
    "transformer_encoder": transformer_encoder,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, make in MODELS.items():
        onnx.save(make(), args.out / f"{name}.onnx")
        print(f"{name}.onnx")
    model, accuracy = digits_cnn(args.out)
    onnx.save(model, args.out / "digits_cnn.onnx")
    print(f"digits_cnn.onnx (test accuracy {accuracy:.4f} on {540} held-out images), digits_calib.npz, digits_test.npz")
    model, accuracy = digits_encoder(args.out)
    onnx.save(model, args.out / "digits_encoder.onnx")
    print(f"digits_encoder.onnx (its classifier: test accuracy {accuracy:.4f}), digits_encoder_calib.npz, "
          "digits_encoder_test.npz")


if __name__ == "__main__":
    main()
