# Targets map onto what people do; `make help` lists them.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
DIR ?=
SEEDS ?= 0,1,2,3,4

.PHONY: help install run test test-slow bench bench-quick gpu-check table reproduce-table reproduce-table-quick lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-24s %s\n", $$1, $$2}'

install:  ## install vade-cli with its dev and tracker/tuning extras (torch from pip's local files here)
	$(PIP) install -e '.[dev,all]'

run: install  ## install, then cluster the embedded digits data with default settings
	vade-run

test:  ## the test suite (CPU, no network)
	$(PYTHON) -m pytest -q

test-slow:  ## also the slow tests (long end-to-end runs)
	$(PYTHON) -m pytest -q -m ''

lint:  ## ruff
	$(PYTHON) -m ruff check vade_cli tests scripts

clean:  ## remove run folders and caches
	rm -rf outputs multirun .pytest_cache .ruff_cache

# Extra arguments for the reproduce targets, e.g. REPRODUCE_ARGS='--out results device=cuda'.
REPRODUCE_ARGS ?=

table:  ## tabulate a sweep folder into table.md/.csv (DIR=multirun/<date>/<time>; default: newest)
	$(PYTHON) -m vade_cli.sweeps.table $(DIR)

reproduce-table:  ## paper presets x SEEDS for each dataset present; reproduce.md beside the paper's numbers
	$(PYTHON) -m vade_cli.sweeps.reproduce --seeds $(SEEDS) $(REPRODUCE_ARGS)

reproduce-table-quick:  ## the same, end to end on digits and synthetic with tiny settings (a smoke test)
	$(PYTHON) -m vade_cli.sweeps.reproduce --quick --seeds 0,1 $(REPRODUCE_ARGS)

bench:  ## samples/s of pretraining, VaDE steps and eval vs the bare-MLP roofline; epoch overhead, peak RSS -> bench.json
	$(PYTHON) -m vade_cli.bench

gpu-check:  ## on a GPU machine: sweep SEEDS of experiment=mnist sharing the GPU, fp32 vs bf16+compile, the tests -> gpu-check/summary.md
	$(PYTHON) scripts/gpu_check.py --out gpu-check --tests $(GPU_CHECK_ARGS)

bench-quick:  ## the same on a tiny network and data (seconds; a smoke test, not a measurement)
	$(PYTHON) -m vade_cli.bench --quick --out bench-quick.json
