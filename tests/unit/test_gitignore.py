"""What the README's commands write in the repository root is ignored; tracked results are not."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(),
                                reason="not a git checkout")


def ignored(*paths: str) -> set[str]:
    result = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True, text=True)
    return set(result.stdout.split())


def test_user_outputs_in_the_root_are_ignored():
    outputs = ["my-profiles/local.json", "plan.json", "plan8.json", "sens.json", "plan.svg", "sweep.png",
               "build8/manifest.json"]
    assert ignored(*outputs) == set(outputs)


def test_committed_images_and_profiles_are_not_ignored():
    tracked = subprocess.run(["git", "ls-files", "*.png", "*.svg", "*.json"], cwd=REPO, capture_output=True,
                             text=True).stdout.split()
    assert "bench/results/e2e.png" in tracked
    assert not ignored(*tracked, "docs/figure.svg", "bench/results/new.png")
