# Targets map onto what people do; `make help` lists them.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
DIR ?=
SEEDS ?= 0,1,2,3,4

.PHONY: help install install-dev run test test-slow generalization readme-table config-docs bench bench-quick gpu-check table reproduce-table reproduce-table-quick lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-24s %s\n", $$1, $$2}'

install:  ## install vade-cli and what the main job needs (torch from pip's local files here)
	$(PIP) install -e .

install-dev:  ## also the test tools, the trackers and Optuna (the tests exercise them)
	$(PIP) install -q -e '.[dev,all]'

run: install  ## install, then cluster the embedded digits data with default settings
	vade-run

test: install-dev  ## the test suite (CPU, no network; a few minutes)
	$(PYTHON) -m pytest -q

test-slow: install-dev  ## only the slow tests (long end-to-end runs; CI runs them too)
	$(PYTHON) -m pytest -q -m slow

generalization:  ## the defaults through dataset=file on eleven data sets, 3 seeds -> multirun/generalization/generalization.md
	$(PYTHON) -m vade_cli.generalization --seeds 0,1,2

readme-table:  ## render README's results table from docs/results.csv
	$(PYTHON) scripts/results_table.py

config-docs:  ## write docs/configuration.md from the shipped YAML files
	$(PYTHON) scripts/config_reference.py

lint:  ## ruff
	$(PYTHON) -m ruff check vade_cli tests scripts

clean:  ## remove run folders and caches
	rm -rf outputs multirun .pytest_cache .ruff_cache

# Extra arguments for the reproduce targets, e.g. REPRODUCE_ARGS='--out results device=cuda'.
REPRODUCE_ARGS ?=
# default: `vade-run dataset=NAME` on each of the paper's datasets present; paper: the presets (experiment=NAME).
RECIPE ?= default

table:  ## tabulate a sweep folder into table.md/.csv (DIR=multirun/<date>/<time>; default: newest)
	$(PYTHON) -m vade_cli.sweeps.table $(DIR)

reproduce-table:  ## RECIPE x SEEDS on each of the paper's datasets present; reproduce.md beside the paper's numbers (run again to continue)
	$(PYTHON) -m vade_cli.sweeps.reproduce --recipe $(RECIPE) --seeds $(SEEDS) $(REPRODUCE_ARGS)

reproduce-table-quick:  ## the same, end to end on digits and synthetic with tiny settings (a smoke test)
	$(PYTHON) -m vade_cli.sweeps.reproduce --quick --seeds 0,1 $(REPRODUCE_ARGS)

bench:  ## samples/s of pretraining, VaDE steps and eval vs the bare-MLP roofline; epoch overhead, peak RSS -> bench.json
	$(PYTHON) -m vade_cli.bench

gpu-check:  ## on a GPU machine: sweep SEEDS of experiment=mnist sharing the GPU, fp32 vs bf16+compile, the tests -> gpu-check/summary.md
	$(PYTHON) scripts/gpu_check.py --out gpu-check --tests $(GPU_CHECK_ARGS)

bench-quick:  ## the same on a tiny network and data (seconds; a smoke test, not a measurement)
	$(PYTHON) -m vade_cli.bench --quick --out bench-quick.json
