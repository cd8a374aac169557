"""Export the torchvision zoo the cut fuzzer and the zoo benches run on, one family each.

Runs in a venv of its own, never edgepart's (edgepart does not depend on torch):

    python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 onnx
    /tmp/torchvenv/bin/python bench/export/zoo.py OUT_DIR [NAME ...]   # every model when no name is given

Each model: the torchvision constructor with weights=None (random weights: outputs mean nothing,
but every operator and shape is the real architecture's), torch.manual_seed(0) before it, .eval(),
traced at [1, 3, 224, 224] with TorchScript's exporter at opset 17, input "input", output "output".
The BERT-style encoder with int64 token ids and an attention mask is bench/export/minilm.py's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torchvision.models as tv

MODELS = {
    "resnet18": lambda: tv.resnet18(weights=None),
    "resnet50": lambda: tv.resnet50(weights=None),
    "resnext50_32x4d": lambda: tv.resnext50_32x4d(weights=None),
    "mobilenet_v2": lambda: tv.mobilenet_v2(weights=None),
    "mobilenet_v3_small": lambda: tv.mobilenet_v3_small(weights=None),
    "efficientnet_b0": lambda: tv.efficientnet_b0(weights=None),
    "densenet121": lambda: tv.densenet121(weights=None),
    "googlenet": lambda: tv.googlenet(weights=None, aux_logits=False, init_weights=True),  # Inception v1
    "squeezenet1_1": lambda: tv.squeezenet1_1(weights=None),
    "shufflenet_v2_x0_5": lambda: tv.shufflenet_v2_x0_5(weights=None),
    "regnet_y_400mf": lambda: tv.regnet_y_400mf(weights=None),
    "convnext_tiny": lambda: tv.convnext_tiny(weights=None),
    "vit_b_16": lambda: tv.vit_b_16(weights=None),
    "swin_t": lambda: tv.swin_t(weights=None),
}


def main(out: str, names: list[str]) -> None:
    torch.set_num_threads(1)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names or MODELS:
        torch.manual_seed(0)
        model = MODELS[name]().eval()
        path = folder / f"{name}.onnx"
        torch.onnx.export(model, torch.randn(1, 3, 224, 224), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"])
        print("wrote", path, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
