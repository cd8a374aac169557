"""A first run meets an empty HOME and cache: every cache location is created on first use."""

from pathlib import Path

from edgepart.cache import cache_dir
from edgepart.runtime import emulate


def test_cache_dir_is_created_on_request(tmp_path, monkeypatch):
    folder = tmp_path / "not" / "there"
    monkeypatch.setenv("EDGEPART_CACHE", str(folder))
    assert cache_dir() == folder and not folder.exists()
    assert cache_dir(create=True) == folder and folder.is_dir()


def test_aarch64_bundle_builds_into_an_empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPART_CACHE", str(tmp_path / "fresh-cache"))
    monkeypatch.setattr(emulate, "_fetch_libraries", lambda versions, into: (into / "libtvm_runtime.so").touch())
    monkeypatch.setattr(emulate, "_build_runner", lambda folder: (Path(folder) / "run_tier").touch())
    folder = emulate.bundle()
    assert (folder / "run_tier").is_file() and (folder / "libtvm_runtime.so").is_file()
    assert folder.parent.parent == tmp_path / "fresh-cache"


def test_runner_source_is_package_data():
    assert emulate.RUNNER_SOURCE.is_file(), emulate.RUNNER_SOURCE
