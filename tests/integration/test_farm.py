"""A farm on this host: TVM's RPC tracker and three runtime-only RPC servers registered under one key
(and one under another key), each in a process group of its own; `profile --tracker` spreads models
over them, and a server killed mid-measurement loses nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from tests.cli.test_cli import assert_one_line_error, edgepart
from tests.conftest import MODELS, REPO, deployment
from tests.integration.test_profile_tvm import free_port, wait_for_port

KEY, OTHER_KEY = "farm-ci", "farm-ci-other"
FARM_MODELS = ("chain_cnn", "digits_cnn", "digits_encoder", "inception_cnn", "residual_cnn", "transformer_encoder")


def start(*arguments: str, runtime_only: bool = False) -> subprocess.Popen:
    env = {**os.environ, **({"TVM_USE_RUNTIME_LIB": "1"} if runtime_only else {})}
    return subprocess.Popen([sys.executable, "-m", *arguments], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # a server forks a worker per session: end them all
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


@pytest.fixture
def farm():
    """The tracker's HOST:PORT and {board address: its server process}."""
    tracker_port = free_port()
    tracker = start("tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(tracker_port),
                    "--port-end", str(tracker_port + 1))
    wait_for_port(tracker_port, tracker)
    ports = [free_port() for _ in range(4)]  # started together, each importing TVM takes seconds
    boards = [start("tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(port), "--port-end", str(port + 1),
                    "--tracker", f"127.0.0.1:{tracker_port}", "--key", key, runtime_only=True)
              for port, key in zip(ports, (KEY, KEY, KEY, OTHER_KEY))]  # the last: a board no request for KEY gets
    for port, board in zip(ports, boards):
        wait_for_port(port, board)
    servers = {f"127.0.0.1:{port}": board for port, board in zip(ports[:3], boards[:3])}
    other = boards[3]
    # asked from a process of its own: this one must not import TVM's runtime alone (other tests need all of TVM)
    registered = ("import sys, time; from edgepart.profile.farm import Farm; farm = Farm(sys.argv[1], sys.argv[2]); "
                  "deadline = time.monotonic() + 30\n"
                  "while len(farm.boards()) < 3 and time.monotonic() < deadline: time.sleep(0.2)\n"
                  "sys.exit(len(farm.boards()) < 3)")
    assert subprocess.run([sys.executable, "-c", registered, f"127.0.0.1:{tracker_port}", KEY], cwd=REPO,
                          timeout=60).returncode == 0, "the servers did not register with the tracker"
    yield f"127.0.0.1:{tracker_port}", servers
    for process in [*servers.values(), other, tracker]:
        stop(process)


def structure(doc: dict) -> tuple:
    return (doc["kind"], doc["device"], sorted(doc["precisions"]), sorted(doc["precisions"]["fp32"]["layers"]),
            sorted(doc["provenance"]) == sorted(set(doc["provenance"]) | {"farm"}))


def test_models_spread_over_the_boards_and_a_killed_board_loses_nothing(farm, tmp_path):
    tracker, servers = farm
    models = [str(MODELS / f"{name}.onnx") for name in FARM_MODELS]
    run = subprocess.Popen([sys.executable, "-m", "edgepart", "profile", *models, "--tracker", tracker, "--key", KEY,
                            "--target", "x86-64", "--repeat", "10", "-o", str(tmp_path / "farm"), "--json"],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    for line in run.stderr:  # kill the board that took the largest model, while it measures it
        if line.startswith("inception_cnn.onnx: measuring on "):
            killed = line.split("measuring on ")[1].strip()
            stop(servers[killed])
            break
    stdout, _ = run.communicate(timeout=600)
    assert run.returncode == 0 and killed
    summary = json.loads(stdout)
    by_model = {os.path.basename(p["model"]): p for p in summary["profiles"]}
    assert sorted(by_model) == sorted(f"{name}.onnx" for name in FARM_MODELS)
    inception = by_model["inception_cnn.onnx"]
    assert inception["lost_on"] and inception["lost_on"][0].startswith(killed) and inception["board"] != killed
    assert len({p["board"] for p in summary["profiles"]}) >= 2  # spread, not one board after another
    assert all(p["board"] in servers for p in summary["profiles"])  # boards of the key asked for only
    local = edgepart("profile", str(MODELS / "digits_cnn.onnx"), "--backend", "tvm", "--target", "x86-64",
                     "--repeat", "10", "--json")
    assert local.returncode == 0, local.stderr
    on_farm = json.loads((tmp_path / "farm" / "digits_cnn.json").read_text())
    assert structure(on_farm)[:4] == structure(json.loads(local.stdout))[:4]
    assert on_farm["provenance"]["farm"]["board"] == by_model["digits_cnn.onnx"]["board"]
    assert on_farm["provenance"]["where"] == f"rpc://{on_farm['provenance']['farm']['board']}"
    speeds = on_farm["provenance"]["farm"]["board_speeds"]  # every board timed on one reference run
    assert speeds["reference"].endswith("chain_cnn.onnx") and set(speeds["seconds"]) >= {p["board"] for p in
                                                                                       summary["profiles"]}
    assert all(seconds > 0 for seconds in speeds["seconds"].values()) and isinstance(speeds["flagged"], list)


def test_farm_options_are_checked(farm, tmp_path):
    tracker, _ = farm
    model = str(MODELS / "digits_cnn.onnx")
    assert_one_line_error(edgepart("profile", model, "--tracker", tracker, "--target", "x86-64"), 2, "--key")
    assert_one_line_error(edgepart("profile", model, "--tracker", tracker, "--key", KEY), 2, "--target")
    assert_one_line_error(edgepart("profile", model, model, "-o", str(tmp_path)), 2, "--tracker")
    assert_one_line_error(edgepart("profile", model, "--tracker", "127.0.0.1:1", "--key", KEY, "--target", "x86-64"),
                          3, "no TVM RPC tracker reachable")


TVM_DEVICE = deployment(backends=("tvm",), extra="[pins]\nfirst_layers = 3\n")


def test_verify_runs_a_tier_on_a_farm_board_and_times_it_there(farm, tmp_path):
    tracker, servers = farm
    (tmp_path / "deploy.toml").write_text(TVM_DEVICE)
    model = str(MODELS / "digits_cnn.onnx")
    assert edgepart("plan", model, "--deploy", str(tmp_path / "deploy.toml"), "-o", str(tmp_path / "plan.json"),
                    "-q").returncode == 0
    assert edgepart("compile", model, "--plan", str(tmp_path / "plan.json"), "-o", str(tmp_path / "build"),
                    "-q").returncode == 0
    result = edgepart("verify", str(tmp_path / "build"), "--tracker", tracker, "--key", KEY, "--on", "device", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    device = next(t for t in report["tiers"] if t["name"] == "device")
    board = device["ran_with"].split("board ")[1].split(" ")[0]
    assert board in servers and report["passed"]
    assert device["not_measurable"] is None and device["measured_s"] > 0 and "on board" in device["timing"]["clock"]
    assert_one_line_error(edgepart("verify", str(tmp_path / "build"), "--tracker", tracker, "--key", KEY, "--on",
                                   "edge"), 2, "--on edge: not a TVM tier")
    assert_one_line_error(edgepart("verify", str(tmp_path / "build"), "--tracker", tracker), 2, "--key")
    assert_one_line_error(edgepart("verify", str(tmp_path / "build"), "--tracker", tracker, "--key", KEY), 2,
                          "--on TIER")


def test_tuning_measures_its_candidates_on_the_boards(farm, tmp_path):
    tracker, _ = farm
    (tmp_path / "deploy.toml").write_text(deployment(backends=("tvm",), edge=False))
    model = str(MODELS / "digits_cnn.onnx")
    plan, build = str(tmp_path / "plan.json"), str(tmp_path / "build")
    assert edgepart("plan", model, "--deploy", str(tmp_path / "deploy.toml"), "-o", plan, "-q").returncode == 0
    result = edgepart("compile", model, "--plan", plan, "-o", build, "--tune", "8", "--tuning-db",
                      str(tmp_path / "db"), "--tracker", tracker, "--key", KEY, "--on", "device", "--json", "-q")
    assert result.returncode == 0, result.stderr
    tuning = json.loads(result.stdout)["tiers"][0]["build"]["tuning"]
    assert tuning["tuned_now"] >= 1
    records = [json.loads(line) for line in (tmp_path / "db").rglob("database_tuning_record.json").__next__()
               .read_text().splitlines()]
    assert records and all(0 < record[1][1][0] < 1.0 for record in records)  # measured, not failed (1e10)
    assert_one_line_error(edgepart("compile", model, "--plan", plan, "-o", build, "--tracker", tracker, "--key", KEY),
                          2, "--tracker means something only with --tune")
    assert_one_line_error(edgepart("compile", model, "--plan", plan, "-o", build, "--tune", "8", "--tracker", tracker,
                                   "--key", "nobody", "--on", "device"), 2, "no board registered under key 'nobody'")
    assert_one_line_error(edgepart("compile", model, "--plan", plan, "-o", build, "--tune", "8", "--tracker", tracker,
                                   "--key", KEY), 2, "every CPU tier of the plan runs on this host")
    assert_one_line_error(edgepart("compile", model, "--plan", plan, "-o", build, "--tune", "8", "--tracker", tracker,
                                   "--key", KEY, "--on", "cloud"), 2, "--on cloud: not a CPU tier of the plan")


def test_batch_profiles_and_verifies_the_farm_devices_on_their_boards(farm, tmp_path):
    tracker, servers = farm
    (tmp_path / "rpi4.toml").write_text(deployment("rpi4", backends=("tvm",), extra="[pins]\nfirst_layers = 3\n"))
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(f'[batch]\nout = "out"\n[[model]]\npath = "{MODELS / "digits_cnn.onnx"}"\n'
                    f'[[deployment]]\npath = "rpi4.toml"\n[farm]\ntracker = "{tracker}"\nkeys = {{ rpi4 = "{KEY}" }}\n')
    result = edgepart("batch", str(jobs), "--json", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    job = json.loads(result.stdout)["jobs"][0]
    assert [s["stage"] for s in job["stages"]] == ["profile", "profile rpi4", "plan", "compile", f"verify on {KEY}"]
    folder = tmp_path / "out" / job["name"]
    profile = json.loads((folder / "profiles" / "rpi4.json").read_text())
    assert profile["device"] == "rpi4" and profile["provenance"]["farm"]["board"] in servers
    plan = json.loads((folder / "plan.json").read_text())
    assert "profile of 'rpi4'" in json.dumps(plan)  # the device tier priced from the farm's measurement
    verified = json.loads((folder / f"verify.{KEY}.json").read_text())
    device = next(t for t in verified["tiers"] if t["name"] == "device")
    assert verified["passed"] and device["ran_with"].split("board ")[1].split(" ")[0] in servers
    again = edgepart("batch", str(jobs), "--json", "-q")
    assert again.returncode == 0 and json.loads(again.stdout)["counts"]["skipped"] == 1

    jobs.write_text(jobs.read_text().replace(tracker, "nowhere"))
    assert_one_line_error(edgepart("batch", str(jobs)), 2, "[farm].tracker: 'nowhere' is not HOST:PORT")




@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("mmdebstrap") or not shutil.which("qemu-aarch64-static"),
                    reason="an emulated aarch64 board needs mmdebstrap and qemu-user-static")
def test_an_arm_tier_is_tuned_and_verified_on_an_emulated_aarch64_board(tmp_path):
    """TVM's aarch64 runtime under qemu-user as a board (bench.emulated_board): the rpi4 tier's
    candidates are cross-linked here and measured there, and verify runs the tier's library there."""
    from bench import emulated_board
    from edgepart.cache import cache_dir

    root = emulated_board.build(cache_dir(create=True) / "arm-board")
    tracker_port, board_port = free_port(), free_port()
    tracker = start("tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(tracker_port),
                    "--port-end", str(tracker_port + 1))
    board = emulated_board.start(root, f"127.0.0.1:{tracker_port}", "arm-ci", board_port)
    try:
        wait_for_port(tracker_port, tracker)
        wait_for_port(board_port, board)
        (tmp_path / "deploy.toml").write_text(deployment("rpi4", "rpi4", ("tvm",), edge=False))
        model = str(MODELS / "digits_cnn.onnx")
        plan, build = str(tmp_path / "plan.json"), str(tmp_path / "build")
        assert edgepart("plan", model, "--deploy", str(tmp_path / "deploy.toml"), "-o", plan, "-q").returncode == 0
        farm_options = ["--tracker", f"127.0.0.1:{tracker_port}", "--key", "arm-ci"]
        result = edgepart("compile", model, "--plan", plan, "-o", build, "--tune", "8", "--tuning-db",
                          str(tmp_path / "db"), *farm_options, "--json", "-q")
        assert result.returncode == 0, result.stderr
        tier = json.loads(result.stdout)["tiers"][0]
        assert tier["build"]["tuning"]["tuned_now"] >= 1 and tier["build"]["elf_machine"] == "AArch64"
        records = next((tmp_path / "db").rglob("database_tuning_record.json")).read_text().splitlines()
        assert records and all(0 < json.loads(line)[1][1][0] < 1.0 for line in records)
        verified = edgepart("verify", build, *farm_options, "--json")
        assert verified.returncode == 0, verified.stderr
        assert "board 127.0.0.1" in json.loads(verified.stdout)["tiers"][0]["ran_with"]
    finally:
        for process in (board, tracker):
            stop(process)
