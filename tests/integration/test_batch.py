"""edgepart batch: models x deployments, each job profile -> plan -> compile -> verify; parallel,
resumable, one failing job does not stop the others."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_cli import assert_one_line_error, edgepart
from tests.conftest import MODELS, deployment

MODELS_USED = ("digits_cnn", "chain_cnn", "residual_cnn", "transformer_encoder")


def jobs_file(folder, models=MODELS_USED, extra: str = "") -> str:
    for device in ("rpi4", "jetson-nano"):
        (folder / f"{device}.toml").write_text(deployment(device))
    text = '[batch]\nout = "out"\nparallel = 2\n'
    text += "".join(f'[[model]]\npath = "{MODELS / name}.onnx"\n' for name in models) + extra
    text += '[[deployment]]\npath = "rpi4.toml"\n[[deployment]]\npath = "jetson-nano.toml"\n'
    (folder / "jobs.toml").write_text(text)
    return str(folder / "jobs.toml")


def test_every_job_runs_reruns_skip_and_a_broken_model_fails_alone(tmp_path):
    jobs = jobs_file(tmp_path)
    result = edgepart("batch", jobs, "--json", "-q")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["kind"] == "edgepart.batch" and summary["counts"] == {"done": 8, "skipped": 0, "failed": 0}
    for job in summary["jobs"]:
        folder = tmp_path / "out" / job["name"]
        assert [s["stage"] for s in job["stages"]] == ["profile", "plan", "compile", "verify"]
        assert (folder / "build" / "manifest.json").is_file()
        assert json.loads((folder / "verify.json").read_text())["passed"]
    result = edgepart("batch", jobs, "--json", "-q")
    assert result.returncode == 0 and json.loads(result.stdout)["counts"] == {"done": 0, "skipped": 8, "failed": 0}

    (tmp_path / "broken.onnx").write_bytes((MODELS / "digits_cnn.onnx").read_bytes()[:300])
    jobs = jobs_file(tmp_path, extra='[[model]]\npath = "broken.onnx"\n')
    result = edgepart("batch", jobs, "--json")
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == 1 and summary["counts"] == {"done": 0, "skipped": 8, "failed": 2}
    broken = [job for job in summary["jobs"] if job["outcome"] == "failed"]
    assert {job["name"] for job in broken} == {"broken.rpi4", "broken.jetson-nano"}
    assert all(job["exit_code"] == 2 and "broken.onnx" in job["error"] for job in broken)
    assert result.stderr.strip().splitlines()[-1].startswith("edgepart: error: 2 of 10 jobs failed")


@pytest.mark.slow  # the rerun that skips is in the test above
def test_a_changed_deployment_runs_its_jobs_again(tmp_path):
    jobs = jobs_file(tmp_path, models=("digits_cnn",))
    assert edgepart("batch", jobs, "-q").returncode == 0
    (tmp_path / "rpi4.toml").write_text(deployment("rpi4", link='preset = "lte"'))
    summary = json.loads(edgepart("batch", jobs, "--json", "-q").stdout)
    assert {job["name"]: job["outcome"] for job in summary["jobs"]} == {"digits_cnn.rpi4": "done",
                                                                         "digits_cnn.jetson-nano": "skipped"}


def test_bad_jobs_files_name_the_field(tmp_path):
    jobs = tmp_path / "jobs.toml"
    for text, named in [
        ('[[model]]\npath = "nope.onnx"\n[[deployment]]\npath = "d.toml"\n', "model[0].path"),
        ('[[model]]\npath = "m.onnx"\n', "no [[deployment]] entries"),
        ('[batch]\nthreads = 2\n', "[batch].threads: unknown key"),
        ('[[model]]\npath = "m.onnx"\nbackend = "tvm"\n[[deployment]]\npath = "d.toml"\n', "model[0].backend"),
        ("[[model]\n", "not a TOML jobs file"),
    ]:
        (tmp_path / "m.onnx").write_bytes(b"x")
        (tmp_path / "d.toml").write_text("")
        jobs.write_text(text)
        assert_one_line_error(edgepart("batch", str(jobs)), 2, named)
    assert_one_line_error(edgepart("batch", str(tmp_path / "missing.toml")), 2, "no such jobs file")
