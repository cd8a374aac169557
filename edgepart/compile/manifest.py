"""manifest.json: what a build folder holds, per tier: artifact, hash, target, I/O, codecs, versions.

Loading checks every artifact path stays inside the build folder and every hash matches, so a
tampered or moved artifact is refused before anything runs it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from edgepart import names, schema
from edgepart.errors import BadInputError

SCHEMA_VERSION = 1
FILE = "manifest.json"
SAMPLE_INPUTS = "sample_inputs.npz"  # one calibration sample, verify's default inputs


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load(build_dir: str | Path) -> dict[str, Any]:
    build_dir = Path(build_dir)
    path = build_dir / FILE
    if not path.is_file():
        raise BadInputError(f"{build_dir}: no {FILE}; is this an edgepart build folder?")
    doc = schema.load_json(path, "manifest", SCHEMA_VERSION)
    tiers = doc.get("tiers")
    if not isinstance(tiers, list) or not all(isinstance(t, dict) for t in tiers):
        raise BadInputError(f"{path}: tiers: expected a list of tiers; is this an edgepart build folder?")
    for i, tier in enumerate(tiers):
        names.checked(tier.get("name"), f"{path}: tiers[{i}].name")
    return doc


def sample_inputs(build_dir: str | Path) -> dict[str, np.ndarray] | None:
    """The calibration sample compile stored in the build (verify's and run's default inputs), or
    None; refused when it resolves outside the build (a symbolic link) or is not plain arrays."""
    where = Path(build_dir) / SAMPLE_INPUTS
    if not where.is_file():
        return None
    path = names.inside(build_dir, SAMPLE_INPUTS, str(where))
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError) as exc:
        raise BadInputError(f"{where}: not a readable .npz of arrays ({exc})") from None
    odd = [name for name, value in arrays.items() if value.dtype.kind not in "biuf"]
    if odd:
        raise BadInputError(f"{where}: array '{odd[0]}' is {arrays[odd[0]].dtype}, not numbers")
    return arrays


def artifact_path(build_dir: str | Path, tier: dict[str, Any], key: str = "artifact") -> Path:
    """The tier's file, refused when its path leaves the build folder or its sha256 differs."""
    root = Path(build_dir).resolve()
    path = (root / tier[key]).resolve()
    if not path.is_relative_to(root):
        raise BadInputError(f"{Path(build_dir) / FILE}: tier '{tier['name']}' {key} path '{tier[key]}' "
                            "escapes the build folder")
    if not path.is_file():
        raise BadInputError(f"{path}: {key} of tier '{tier['name']}' is missing")
    expected = tier[f"{key}_sha256"]
    actual = sha256(path)
    if actual != expected:
        raise BadInputError(f"{path}: sha256 {actual[:12]} does not match the manifest ({expected[:12]}); "
                            "the artifact was changed after compile")
    return path
