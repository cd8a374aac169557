"""Standard architectures rebuilt with the graph builder, to check MAC counts against published figures.

By default weights are dims only (`weights="empty"`): such models are for counting, not running.
"""

from __future__ import annotations

import onnx

from edgepart.graph.builder import GraphBuilder


def resnet50() -> onnx.ModelProto:
    b = GraphBuilder("resnet50", weights="empty")
    x = b.conv(b.input("input", (1, 3, 224, 224)), 64, 7, stride=2)
    x = b.pool(x, "MaxPool", 3, 2, pad=1)
    channels = 64
    for width, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for i in range(blocks):
            s = stride if i == 0 else 1
            y = b.conv(x, width, 1)
            y = b.conv(y, width, 3, stride=s)
            y = b.conv(y, width * 4, 1, relu=False)
            shortcut = b.conv(x, width * 4, 1, stride=s, relu=False) if channels != width * 4 or s != 1 else x
            x = b.relu(b.add(y, shortcut))
            channels = width * 4
    b.output(b.gemm(b.flatten(b.global_pool(x)), 1000))
    return b.build()


def mobilenet_v2(weights: str = "empty", classes: int = 1000) -> onnx.ModelProto:
    b = GraphBuilder("mobilenet_v2", weights=weights)
    x = b.clip6(b.conv(b.input("input", (1, 3, 224, 224)), 32, 3, stride=2, relu=False))
    channels = 32
    for expand, cout, repeats, stride in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                                          (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(repeats):
            s = stride if i == 0 else 1
            hidden = channels * expand
            y = b.clip6(b.conv(x, hidden, 1, relu=False)) if expand != 1 else x
            y = b.clip6(b.conv(y, hidden, 3, stride=s, group=hidden, relu=False))
            y = b.conv(y, cout, 1, relu=False)
            x = b.add(x, y) if s == 1 and channels == cout else y
            channels = cout
    x = b.clip6(b.conv(x, 1280, 1, relu=False))
    b.output(b.gemm(b.flatten(b.global_pool(x)), classes))
    return b.build()


def vgg16() -> onnx.ModelProto:
    b = GraphBuilder("vgg16", weights="empty")
    x = b.input("input", (1, 3, 224, 224))
    for item in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
        x = b.pool(x, "MaxPool", 2, 2) if item == "M" else b.conv(x, item, 3)
    x = b.flatten(x)
    x = b.relu(b.gemm(x, 4096))
    x = b.relu(b.gemm(x, 4096))
    b.output(b.gemm(x, 1000))
    return b.build()
