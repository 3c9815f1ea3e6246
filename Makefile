# Two commands on a fresh machine: `make reproduce` (set up + whole pipeline) and `make test`.
# Needs only python3 (3.11) with venv and pip. Everything installs into .venv/ in this directory.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
REV ?= HEAD
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: setup reproduce verify chaos test test-data test-slurm bench bench-compare report dvc.yaml checkout pull lock lint clean-venv

setup: $(STAMP)  ## create .venv with the pinned environment (idempotent, fast when done)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

reproduce: setup  ## set up, then run the whole pipeline (snakemake --cores all)
	source $(BIN)/activate && snakemake --cores $(CORES)

verify: setup  ## did I reproduce it? compare the results here with those committed at REV (default HEAD)
	$(BIN)/python -m flowtheory.pipeline.verify --rev $(REV)

chaos: setup  ## which runs are chaotic under round-off? results/chaos.json for verify (three perturbed pipeline runs in a copy), then the claims marking its fragile verdicts
	source $(BIN)/activate && python -m bench.chaos --cores $(CORES) && snakemake --cores $(CORES)

test-data:  ## real Fashion-MNIST IDX files for the IDX-reader tests (Debian package; root only)
	@if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] \
	   && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	fi

test-slurm:  ## slurm-wlm and munge for the one-node SLURM cluster test (Debian packages; root only)
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then tools/slurm/cluster.sh install; fi

test: setup test-data test-slurm  ## set up, then lint and run the test suite
	source $(BIN)/activate && ruff check . && ruff format --check . && pytest

bench: setup  ## speed benchmarks, measured side by side (results in benchmarks/)
	source $(BIN)/activate && python -m bench.steps && python -m bench.pipeline

bench-compare: setup  ## old commit (OLD, default 6909fdb) vs this tree, tiny and paper configs, back to back
	source $(BIN)/activate && python -m bench.compare --old $(or $(OLD),6909fdb)

report: setup  ## one HTML report, opening on the conclusions and the scorecard, with every figure and caption
	$(BIN)/python -m flowtheory.pipeline.hooks

dvc.yaml: setup  ## regenerate dvc.yaml from src/flowtheory/pipeline/paths.py
	$(BIN)/python -m flowtheory.pipeline.dvc_export > dvc.yaml

checkout: setup  ## restore the results recorded in dvc.lock (after git checkout), then sync Snakemake
	source $(BIN)/activate && dvc checkout && snakemake --cores 1 --touch

pull: setup  ## fetch results from the DVC remote, then sync Snakemake
	source $(BIN)/activate && dvc pull && snakemake --cores 1 --touch

lock:  ## re-resolve the pins in requirements.txt from pyproject.toml
	rm -rf /tmp/flowtheory-lock && $(PYTHON) -m venv /tmp/flowtheory-lock
	/tmp/flowtheory-lock/bin/pip install --quiet . && /tmp/flowtheory-lock/bin/pip freeze --exclude flowtheory \
	  | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' > requirements.txt.new
	(head -2 requirements.txt; cat requirements.txt.new) > requirements.txt.tmp && mv requirements.txt.tmp requirements.txt
	rm requirements.txt.new

lint: setup  ## ruff (code and format), snakemake --lint, snakefmt
	source $(BIN)/activate && ruff check . && ruff format --check . && snakemake --lint && snakefmt --check Snakefile workflow/rules

clean-venv:
	rm -rf $(VENV)
