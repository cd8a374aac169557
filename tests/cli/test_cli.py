"""The CLI as a user meets it: a real process, its exit code, stdout and stderr."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import onnx
import pytest

from edgepart.cli import cli
from tests.conftest import MODELS, REPO


def edgepart(*args: str, cwd=None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgepart", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_inspect_json_keys():
    result = edgepart("inspect", str(MODELS / "residual_cnn.onnx"), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["kind"] == "edgepart.inspect"
    assert set(doc["model"]) == {"path", "sha256", "opset", "inputs", "outputs"}
    assert set(doc["totals"]) == {"nodes", "macs", "flops", "params", "param_bytes"}
    assert doc["totals"]["nodes"] == len(doc["nodes"])
    assert sum(n["macs"] for n in doc["nodes"]) == doc["totals"]["macs"]


def test_inspect_output_is_deterministic_and_global_json_flag_works():
    first = edgepart("--json", "inspect", str(MODELS / "digits_cnn.onnx"))
    second = edgepart("inspect", str(MODELS / "digits_cnn.onnx"), "--json")
    assert first.returncode == 0 and first.stdout == second.stdout


def test_inspect_table():
    result = edgepart("inspect", str(MODELS / "chain_cnn.onnx"))
    assert result.returncode == 0
    assert "conv1" in result.stdout and "total: 15 layers" in result.stdout


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.onnx"
    path.write_bytes((MODELS / "chain_cnn.onnx").read_bytes()[:50_000])
    assert_one_line_error(edgepart("inspect", str(path)), 2, "cut.onnx", "not a readable ONNX model")


def test_non_onnx_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are not the weights you are looking for\n")
    assert_one_line_error(edgepart("inspect", str(path)), 2, "notes.txt")


def test_dynamic_batch_without_input_shape(tmp_path, dynamic_batch_model):
    path = tmp_path / "dyn.onnx"
    onnx.save(dynamic_batch_model, path)
    assert_one_line_error(edgepart("inspect", str(path)), 2, "dyn.onnx", "'batch'", "--input-shape x=")
    fixed = edgepart("inspect", str(path), "--input-shape", "x=4x3x8x8", "--json")
    assert fixed.returncode == 0
    assert json.loads(fixed.stdout)["model"]["inputs"][0]["shape"] == [4, 3, 8, 8]


def test_run_on_a_missing_build_is_one_line(tmp_path):
    assert_one_line_error(edgepart("run", str(tmp_path / "nowhere")), 2, "nowhere")


@pytest.mark.parametrize("option", ["--repeat=0", "--warmup=-1", "--threads=0", "--check-segments=-2",
                                    "--repeat=1000000000", "--warmup=99999999", "--threads=100000",
                                    "--check-segments=5000"])
def test_profile_refuses_counts_out_of_range(tmp_path, option):
    result = edgepart("profile", str(MODELS / "digits_cnn.onnx"), option, "-o", str(tmp_path / "p.json"))
    assert_one_line_error(result, 2, option.split("=")[0], "must be from")
    assert not (tmp_path / "p.json").exists()


def test_verbose_shows_traceback(tmp_path):
    path = tmp_path / "x.onnx"
    path.write_text("nope")
    result = edgepart("-v", "inspect", str(path))
    assert result.returncode == 2 and "Traceback" in result.stderr


@pytest.mark.parametrize("name", cli.list_commands(None))
def test_every_command_and_option_has_help(name):
    command = cli.get_command(None, name)
    assert command.help
    for param in command.params:
        if param.param_type_name == "option":
            assert param.help, f"{name} {param.opts} has no help"
    docs = (REPO / "docs" / "cli.md").read_text()
    assert f"edgepart {name}" in docs


def synopsis(name: str) -> str:
    """The code block that opens the `## edgepart NAME` section of docs/cli.md."""
    docs = (REPO / "docs" / "cli.md").read_text()
    section = re.search(rf"^## edgepart {name}\n(.*?)(?=^## |\Z)", docs, re.MULTILINE | re.DOTALL)
    assert section, f"docs/cli.md has no section '## edgepart {name}'"
    block = re.search(r"```\n(.*?)```", section.group(1), re.DOTALL)
    assert block, f"docs/cli.md: the section of edgepart {name} has no synopsis"
    return block.group(1)


@pytest.mark.parametrize("name", cli.list_commands(None))
def test_every_option_is_in_its_commands_synopsis(name):
    """Each option of each command (by its long or short name) appears in the synopsis of its section."""
    text = synopsis(name)
    missing = [max(param.opts, key=len) for param in cli.get_command(None, name).params
               if param.param_type_name == "option" and "--help" not in param.opts
               and not any(re.search(re.escape(opt) + r"(?![\w-])", text) for opt in param.opts)]
    assert not missing, f"docs/cli.md: the synopsis of edgepart {name} lacks {', '.join(missing)}"
