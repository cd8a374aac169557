"""Load a tier of a build folder for running: the manifest's hash is checked before TVM sees it."""

from __future__ import annotations

from pathlib import Path

from edgepart.compile import manifest


def load(build_dir: str | Path, name: str):
    """A TvmTier (runtime only) for tier `name`; refused when the artifact was changed."""
    from edgepart.toolchain.tvm_tier import TvmTier  # noqa: PLC0415 - TVM's runtime only

    tier = manifest.Manifest.load(build_dir).tier(name)
    return TvmTier(manifest.artifact_path(build_dir, tier), tier.runtime_device)
