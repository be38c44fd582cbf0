# mscct: `make demo` and `make test` do all set-up themselves (via `make install`).
#
#   make install            system packages (ffmpeg, python venv) + .venv with all extras
#   make demo               synthetic dataset -> ingest -> split -> train (tiny) -> report
#   make test               lint + the whole test suite
#   make lint / make fmt    ruff and mypy checks / ruff rewrite
#   make bench              the benchmarks in benchmarks/ (JSON in benchmarks/results/)
#
# Override the torch build with e.g. `make install TORCH_SPEC=torch` (CUDA wheels)
# or `TORCH_SPEC='torch==2.13.0+cpu'`.
#
# torch versions: the code needs >= 2.4 (pyproject.toml's `train` extra). TORCH_SPEC is the
# version `make test` runs the suite with. The Docker images pin the torch of their CUDA base
# image instead (docker/Dockerfile.trainer, 2.5.1 with CUDA 12.4), which meets the floor and
# is checked at image build time by importing the training loop, but is not what the suite
# runs on; tests/test_torch_pins.py keeps the three consistent.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= demo
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP := $(VENV)/.installed-$(shell printf '%s' '$(TORCH_SPEC)' | md5sum | cut -c1-8)

.PHONY: install system-deps browser demo test lint fmt bench clean

install: $(STAMP)

system-deps:
	@missing=""; \
	command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing="$$missing ffmpeg"; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

# The HTML report's test opens the page in a headless browser; only `make test` needs it.
browser:
	@command -v chromium >/dev/null || { \
		echo "installing system packages: chromium"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

$(STAMP): pyproject.toml Makefile | system-deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[pipeline,landmarks,dev,bench,s3]"
	@# AV-Deepfake1M's AP/AR (the eval extra): its declared dependencies would replace torch.
	$(BIN)/python -m pip install -q --no-deps "avdeepfake1m==0.0.4"
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: install
	rm -rf $(DEMO_DIR)
	$(BIN)/mscct-pipeline synth $(DEMO_DIR)/data --per-category 12 --seed 0
	$(BIN)/mscct-pipeline ingest $(DEMO_DIR)/data --store $(DEMO_DIR)/store
	$(BIN)/mscct-pipeline split --store $(DEMO_DIR)/store --balance --ratios 0.5,0.25,0.25
	$(BIN)/mscct-train run --store $(DEMO_DIR)/store --config tiny --out $(DEMO_DIR)/run

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint browser
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .ruff_cache .mypy_cache
