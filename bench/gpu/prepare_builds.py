"""Build each example model as a three-tier plan (aarch64 device, x86-64 edge, CUDA sm_90 cloud)
with `edgepart plan` and `edgepart compile`, into .device/builds/<model>, for bench/gpu/verify_builds.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.integration.test_compile import three_tier_deploy  # noqa: E402  (the same 3-tier setup as the tests)


def main() -> None:
    out = REPO / ".device" / "builds"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for model in sorted((REPO / "models").glob("*.onnx")):
        work = out / f"{model.stem}.work"
        work.mkdir()
        deploy = three_tier_deploy(work, model)
        plan = work / "plan.json"
        model_arg = str(model.relative_to(REPO))
        for command in (["plan", model_arg, "--deploy", str(deploy), "-o", str(plan), "-q"],
                        ["compile", model_arg, "--plan", str(plan), "-o", str(out / model.stem), "-q"]):
            subprocess.run([sys.executable, "-m", "edgepart", *command], check=True, cwd=REPO)
        print(model.stem, sorted(p.name for p in (out / model.stem).iterdir()))


if __name__ == "__main__":
    main()
