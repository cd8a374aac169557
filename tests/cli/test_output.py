"""What commands print, and where: the result alone on stdout, the profile table's columns, the ETA."""

from __future__ import annotations

import json
import re

import pytest

from edgepart.cli import output
from edgepart.cli.output import OutputOptions, eta_text, progress_bar
from edgepart.cli.profile_cmd import render
from tests.cli.test_cli import edgepart
from tests.conftest import MODELS, REPO


def _profile(layer: dict) -> dict:
    return {"model": {"path": "m.onnx"}, "device": "local", "predicted": "median_s" not in layer,
            "provenance": {"method": "measured", "end_to_end": {"median_s": 2e-3, "n": 50}, "sum_error": 0.0,
                           "calibration_factor": 1.3, "segment_median_abs_error": None, "segments": []},
            "precisions": {"fp32": {"layers": {"conv": layer}}}}


def test_profile_table_puts_p10_and_p90_on_the_calibrated_scale():
    """A calibration factor of 1.3 used to show ms 1.3 beside a raw p90 of 1.1."""
    text = render(_profile({"median_s": 1e-3, "p10_s": 0.9e-3, "p90_s": 1.1e-3, "n": 50, "calibrated_s": 1.3e-3,
                            "energy_j": 1e-3}))
    row = next(line for line in text.splitlines() if line.startswith("conv"))
    ms, p10, p90 = (float(cell) for cell in row.split()[1:4])
    assert (ms, p10, p90) == (1.3, 1.17, 1.43)
    assert "scaled by the same factor" in text


def test_a_predicted_profile_shows_no_spread():
    text = render(_profile({"calibrated_s": 1e-3, "energy_j": 1e-3}))
    row = next(line for line in text.splitlines() if line.startswith("conv"))
    assert row.split()[2:4] == ["-", "-"] and "predicted from the device profile" in text


def test_eta_waits_for_a_measured_rate():
    assert eta_text(1.0, 0, 500) == ""  # the start-up second, no step done: click said 8.5 min here
    assert eta_text(1.0, 1, 500) == ""
    assert eta_text(1.5, 100, 500) == ""  # a fifth of the steps, but too few seconds of them
    assert eta_text(30.0, 20, 500) == ""  # seconds, but too few steps
    assert eta_text(3.0, 100, 500) == "ETA 00:00:12"
    assert eta_text(3000.0, 100, 500) == "ETA 03:20:00"
    assert eta_text(3.0, 500, 500) == ""


def test_sensitivity_keeps_its_timing_off_stdout():
    """stdout is the result only: the measuring time (a bare '0.7 s' line) is a log line, shown with -v."""
    result = edgepart("sensitivity", str(MODELS / "digits_cnn.onnx"), "--data", str(MODELS / "digits_calib.npz"),
                      "--samples", "8", "-v")
    assert result.returncode == 0, result.stderr
    assert not re.search(r"^\s*[0-9.]+ s\s*$", result.stdout, re.MULTILINE)
    assert "measured in" in result.stderr and "measured in" not in result.stdout


@pytest.mark.parametrize("args", [
    ("inspect", str(MODELS / "digits_cnn.onnx")),
    ("profile", str(MODELS / "digits_cnn.onnx"), "--predict", "--device", "rpi4", "--precision", "fp32,int8"),
    ("sensitivity", str(MODELS / "digits_cnn.onnx"), "--samples", "4", "--precision", "int8"),
    ("plan", str(MODELS / "digits_cnn.onnx"), "--deploy", str(REPO / "examples" / "board-server.toml")),
    ("sweep", str(MODELS / "digits_cnn.onnx"), "--deploy", str(REPO / "examples" / "board-server.toml")),
], ids=lambda args: args[0])
def test_json_stdout_is_one_document_and_nothing_else(args):
    result = edgepart(*args, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["kind"].startswith("edgepart.")


def test_without_a_terminal_a_long_run_logs_progress_lines(monkeypatch, capsys):
    """A pipeline gets a line now and then instead of a bar; a short run prints none; -q none at all."""
    with progress_bar(OutputOptions(json=True), 10, "profiling") as update:
        update(5)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(output, "LOG_AFTER_S", 0.0)
    with progress_bar(OutputOptions(json=True), 10, "profiling") as update:
        update(4)
        update(6)
    assert capsys.readouterr().err.splitlines() == ["edgepart: profiling: 4/10 (40%)",
                                                    "edgepart: profiling: 10/10 (100%)"]
    with progress_bar(OutputOptions(quiet=True), 10, "profiling") as update:
        update(10)
    assert capsys.readouterr().err == ""
