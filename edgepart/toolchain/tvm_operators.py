"""The ONNX operators TVM's importer has a converter for, written to the shipped list
edgepart/profiles/tvm_operators.json (`make tvm-operators`), which the plan reads without loading
TVM (edgepart.hardware.backends.takes). A test holds the list to the installed TVM."""

from __future__ import annotations

from pathlib import Path

from edgepart import schema

FILE = Path(__file__).resolve().parents[1] / "profiles" / "tvm_operators.json"
HANDLED_BY_THE_IMPORTER = ("Constant", "If")  # not in the converter map, taken all the same


def installed() -> dict:
    import tvm
    from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

    return schema.document("tvm_operators", 1, {
        "tvm_version": tvm.__version__,
        "source": "tvm.relax.frontend.onnx's converter map of the installed apache-tvm, and the operators its "
                  "importer handles itself; `make tvm-operators` writes it anew",
        "operators": sorted({*_get_convert_map(), *HANDLED_BY_THE_IMPORTER})})


if __name__ == "__main__":
    schema.write_json(FILE, installed())
    print(FILE)
