"""Load a tier library with TVM's runtime only, in a process of its own, as the device will: the
functions it calls that this runtime lacks, and, given inputs, what it computes.

Run as `python -m edgepart.toolchain.tvm_probe SPEC.json`; prints a JSON summary on stdout. The spec:
`library`, `device` (cpu, cuda), `functions` (edgepart.toolchain.tvm_worker.runtime_functions),
and optionally `inputs` / `outputs` (.npz files: input0.. read, output0.. written) to run it once.
A process of its own, so a library that crashes TVM's runtime fails the probe, not compile.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edgepart.errors import first_line


def probe(spec: dict) -> dict:
    import numpy as np

    from edgepart.toolchain.tvm_tier import TvmTier, import_runtime

    tvm = import_runtime(spec["device"])
    missing = [name for name in spec["functions"] if tvm.get_global_func(name, allow_missing=True) is None]
    if missing or not spec.get("inputs"):
        return {"missing": missing}
    with np.load(spec["inputs"]) as stored:
        inputs = [stored[f"input{i}"] for i in range(len(stored.files))]
    outputs = TvmTier(spec["library"], spec["device"]).run(inputs)
    np.savez(spec["outputs"], **{f"output{i}": value for i, value in enumerate(outputs)})
    return {"missing": [], "outputs": len(outputs)}


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    try:
        summary = probe(spec)
    except Exception as exc:  # TVM's runtime raises its own error types; the caller reports the first line
        summary = {"error": first_line(exc, 400)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
