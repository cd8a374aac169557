"""Run compiled tiers with TVM's runtime alone (never its compiler), and check them against onnxruntime."""
