# edgepart: `make demo` installs and runs the main job on an example; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_MODEL ?= models/residual_cnn.onnx

.PHONY: install system-deps arm-runtime verify-arm test test-all demo models bench conformance fuzz-cuts tvm-operators lint clean host-profile wheel-check

install: $(STAMP) system-deps

# Cross toolchains and qemu-user for the aarch64/armv7 targets and their emulated checks, and the
# static OpenBLAS that CPU tiers link their convolutions and matrix products with, for x86-64 and,
# through Debian's multiarch, for arm64 (Debian).
SYSTEM_TOOLS := aarch64-linux-gnu-g++ arm-linux-gnueabihf-g++ qemu-aarch64-static
OPENBLAS_STATIC := /usr/lib/x86_64-linux-gnu/openblas-serial/libopenblas.a \
  /usr/lib/aarch64-linux-gnu/openblas-serial/libopenblas.a
system-deps:
	@missing=""; for tool in $(SYSTEM_TOOLS); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing cross toolchains and qemu-user (missing:$$missing)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    g++-aarch64-linux-gnu gcc-aarch64-linux-gnu g++-arm-linux-gnueabihf gcc-arm-linux-gnueabihf \
	    qemu-user-static >/dev/null; \
	fi
	@missing=""; for lib in $(OPENBLAS_STATIC); do [ -f $$lib ] || missing="$$missing $$lib"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing the static OpenBLAS for amd64 and arm64 (missing:$$missing)"; \
	  { dpkg --add-architecture arm64 && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    libopenblas-serial-dev libopenblas-serial-dev:arm64 >/dev/null; } \
	  || echo "warning: the static OpenBLAS could not be installed; CPU tiers will build with TVM's own (slow) kernels"; \
	fi

# TVM's aarch64 runtime and the tier runner, for running aarch64 tiers under qemu (cached).
arm-runtime: install
	$(BIN)/python -c "from edgepart.runtime import emulate; print(emulate.bundle())"

# Compile the demo's split plan (rpi4 device tier) and verify it, the aarch64 tier under qemu.
verify-arm: arm-runtime demo
	$(BIN)/edgepart verify build/demo/build
	$(BIN)/edgepart run build/demo/build --requests 20

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

# Everything, including slow tests (gpu-marked tests still need an NVIDIA GPU).
test-all: install
	$(BIN)/python -m pytest -q -m 'not gpu'

# The main job on a bundled example: inspect, profile this host, plan two tiers (a Raspberry Pi 4 and
# this host, examples/demo.toml), compile, verify, run.
demo: install
	$(BIN)/edgepart inspect $(DEMO_MODEL)
	mkdir -p build/demo/profiles
	$(BIN)/edgepart profile $(DEMO_MODEL) --check-segments 5 -o build/demo/profiles/local.json
	$(BIN)/edgepart plan $(DEMO_MODEL) --deploy examples/demo.toml --profiles build/demo/profiles \
	  --explain -o build/demo/plan.json --svg build/demo/plan.svg
	$(BIN)/edgepart compile $(DEMO_MODEL) --plan build/demo/plan.json -o build/demo/build
	$(BIN)/edgepart verify build/demo/build
	$(BIN)/edgepart run build/demo/build --requests 20

# Build the sdist and wheel, install the wheel in a clean venv, run the chain outside the checkout.
wheel-check: install
	bash .ci/wheel-check $(BIN)/python

# Regenerate the example models (deterministic; trains the digits CNN in numpy, ~10 s).
models: install
	$(BIN)/python models/make_models.py

# The ONNX operators the installed TVM imports, which plans keep off TVM tiers otherwise.
tvm-operators: install
	$(BIN)/python -m edgepart.toolchain.tvm_operators

# Re-measure this host into edgepart/profiles/devices/local.json.
host-profile: install
	$(BIN)/python -m edgepart.profile.host

bench: install
	$(BIN)/python -m bench

# Every applicable ONNX node test through the chain per backend mode (about 45 min with 2 jobs;
# bench/results/conformance.md), and seeded random cuts of a torchvision zoo compiled for x86-64,
# aarch64 and CUDA (ZOO: a folder made by bench/export/zoo.py; resumable; bench/results/cuts.md).
conformance: install
	$(BIN)/python -m bench.bench_conformance --jobs 2

ZOO ?= zoo
fuzz-cuts: install arm-runtime
	$(BIN)/python -m bench.bench_cuts $(ZOO) --cuts 200 --before

lint: install
	$(BIN)/ruff check edgepart tests models bench

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
