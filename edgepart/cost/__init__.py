"""The cost model: numbers only (no ONNX, no I/O), built from a LayerGraph, profiles and a deployment."""

from edgepart.cost.model import CostModel, Metrics, Objective, TensorCosts, evaluate

__all__ = ["CostModel", "Metrics", "Objective", "TensorCosts", "evaluate"]
