# The single entry point for developers and CI: `make help` lists the targets.

# durable_rules does not import on 3.13, so take the first of python3.12 / python3.11 that runs
# (a pyenv shim can exist for a version that is not active, so `command -v` is not enough).
PYTHON ?= $(shell for p in python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 13))' \
	>/dev/null 2>&1 && { echo $$p; break; }; done)

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv yls demo test policy-check schema-check lint format typecheck bench fuzz docs notice-screenshot clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' \
		$(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then \
		echo "error: need python3.12 or python3.11 on PATH (durable_rules does not import on 3.13)" >&2; \
		exit 1; \
	fi
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 13))' || { \
		echo "error: $(PYTHON) is not Python 3.11 or 3.12 (durable_rules does not import on 3.13)" >&2; \
		exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check --quiet -e '.[dev,service,dask]'
	@touch $@

venv: $(STAMP) ## Create .venv and install the package with its dev tools

# The yaml-language-server that tests/test_yaml_language_server.py drives as an editor does: the
# version and every dependency pinned by tests/editor/package-lock.json, installed with npm ci
# (no install scripts) into .venv/node, and reinstalled only when the lock file changes.
NODE_DIR := $(VENV)/node
YLS_STAMP := $(NODE_DIR)/.installed
$(YLS_STAMP): tests/editor/package.json tests/editor/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
		echo "error: need node and npm on PATH for the yaml-language-server tests (make yls)" >&2; \
		exit 1; }
	@mkdir -p $(NODE_DIR)
	cp tests/editor/package.json tests/editor/package-lock.json $(NODE_DIR)/
	npm ci --prefix $(NODE_DIR) --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

yls: $(YLS_STAMP) ## Install the pinned yaml-language-server into .venv/node (make test does)

demo: $(STAMP) ## Evaluate the example T12-S2 fusion case
	@# exit 1 (not medically necessary) and 3 (insufficient documentation) are determinations,
	@# not failures; 2 (invalid input) or anything else is.
	@$(BIN)/necessity evaluate examples/cases/t12-s2-fusion.json; rc=$$?; \
	case $$rc in \
		0|1|3) exit 0 ;; \
		*) echo "demo failed: necessity exited with $$rc" >&2; exit 1 ;; \
	esac

# pytest's exit code 5 (no tests collected) is non-zero, so it fails this target as it must.
# NECESSITY_REQUIRE_YLS: the editor tests fail, rather than skip, when the server is missing.
test: lint typecheck policy-check schema-check yls ## Lint, type-check, check the policies, then run the tests
	NECESSITY_REQUIRE_YLS=1 $(BIN)/python -m pytest

policy-check: $(STAMP) ## Lint and fmt --check every policy (and the benchmark's); run their suites at 100 % coverage
	$(BIN)/necessity lint
	$(BIN)/necessity fmt --check
	$(BIN)/necessity test --coverage --fail-under 100
	$(BIN)/necessity lint benchmarks/policies
	$(BIN)/necessity fmt --check benchmarks/policies
	$(BIN)/necessity test --policies-dir benchmarks/policies --coverage --fail-under 100

# An outside client (an editor, CI) validates files with the schemas alone, offline: no schema
# may send a $ref to the network.
schema-check: $(STAMP) ## Validate policies, cases and test suites with check-jsonschema (offline)
	$(BIN)/check-jsonschema --schemafile schemas/policy.schema.json policies/*/*.yaml \
		benchmarks/policies/*/*.yaml
	$(BIN)/check-jsonschema --schemafile schemas/policy-test.schema.json policies/*/tests/*.yaml \
		benchmarks/policies/*/tests/*.yaml
	$(BIN)/check-jsonschema --schemafile schemas/module.schema.json \
		$(filter-out policies/_shared/valuesets/%,$(wildcard policies/_shared/*/*.yaml))
	$(BIN)/check-jsonschema --schemafile schemas/plan.schema.json policies/*/plans/*.yaml
	$(BIN)/check-jsonschema --schemafile schemas/case.schema.json examples/cases/*.json

lint: $(STAMP) ## Run ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP) ## Run mypy (strict on evaluator/)
	$(BIN)/mypy

# `make test` runs the same fuzz tests bounded to a few seconds.
fuzz: $(STAMP) ## Long fuzzing: generated policies against the reference interpreter; generated and mutated cases through the CLI
	NECESSITY_FUZZ=long $(BIN)/python -m pytest -q tests/test_fuzz_policies.py
	NECESSITY_FUZZ_EXAMPLES=500 $(BIN)/python -m pytest tests/test_fuzz.py -q

# The `bench` extra (clipspy, the CLIPS peer); without it compare.py skips CLIPS and says why.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --disable-pip-version-check --quiet -e '.[dev,service,dask,bench]' \
		|| echo "warning: the bench extra (clipspy) did not install; CLIPS is skipped" >&2
	@touch $@

# BENCH_CASES=N sets compare.py's size; BENCH_FULL=1 adds the 100,000-case memory run (minutes).
# compare.py goes first: it writes RESULTS.md whatever the targets run.py enforces say.
bench: $(BENCH_STAMP) ## Run the benchmarks (issue 10's side by side writes benchmarks/RESULTS.md); exits non-zero when a target in benchmarks/README.md is missed
	$(BIN)/python benchmarks/compare.py
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/tracing.py
	$(BIN)/python benchmarks/lines.py
	$(BIN)/python benchmarks/cold_start.py

# tests/test_show.py fails when a committed document differs from what its policy renders.
docs: $(STAMP) ## Regenerate docs/policies/<id>-<version>.md (necessity show) for every policy
	@mkdir -p docs/policies
	@for f in policies/*/*.yaml; do \
		id=$$(basename $$(dirname $$f)); version=$$(basename $$f .yaml); \
		$(BIN)/necessity show $$id@$$version --format markdown > docs/policies/$$id-$$version.md \
			|| exit 1; \
	done

NOTICE_DIR ?= build/notice
# Installs Debian's chromium with apt-get when it is missing (needs root).
notice-screenshot: $(STAMP) ## Render the founding and a pended case's notices as HTML, PNG and PDF (A4, Letter) in build/notice
	$(BIN)/python tests/chromium.py $(NOTICE_DIR)

clean: ## Remove .venv, caches and build output
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find . -name '*.egg-info' -prune -exec rm -rf {} +
	find . -name __pycache__ -prune -exec rm -rf {} +
