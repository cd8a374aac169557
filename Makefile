# edgepart: `make demo` installs and runs the main job on an example; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_MODEL ?= models/residual_cnn.onnx

.PHONY: install test test-all demo models bench lint clean host-profile

install: $(STAMP)

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

demo: install
	$(BIN)/edgepart inspect $(DEMO_MODEL)
	$(BIN)/edgepart plan $(DEMO_MODEL) --deploy examples/phone-edge-cloud.toml --explain -o build/demo/plan.json

# Regenerate the example models (deterministic; trains the digits CNN in numpy, ~10 s).
models: install
	$(BIN)/python models/make_models.py

# Re-measure this host into profiles/devices/local.json.
host-profile: install
	$(BIN)/python -m edgepart.profile.host

bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check edgepart tests models bench

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
