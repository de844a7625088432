# The front door. `make help` lists the targets.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV ?= uv
SIM_PORT ?= 8765
DEMO_SECONDS ?= 20

.DEFAULT_GOAL := help

# make sim / make demo: a busy SIM_PORT is one line with the hint, before anything starts.
ifneq ($(filter sim demo,$(MAKECMDGOALS)),)
  port_problem := $(shell python3 scripts/port_free.py $(SIM_PORT) $(firstword $(filter sim demo,$(MAKECMDGOALS))) 2>&1 >/dev/null)
  ifneq ($(port_problem),)
    $(error $(port_problem))
  endif
endif
.PHONY: help install run demo sim test test-fast soak bench check lint fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## install every package of the workspace (uv sync)
	@command -v $(UV) >/dev/null || python3 -m pip install --quiet uv
	$(UV) sync --frozen

# Ctrl-C goes to the recorder alone (scripts/foreground.py), so make exits with its exit code:
# 0 once everything is flushed, not make's own "Interrupt".
run: install ## record BTCUSDT from Bybit mainnet until Ctrl-C (pass ARGS="symbols=majors ...")
	@$(UV) run python scripts/foreground.py $(UV) run recorder $(ARGS)

demo: install ## start the bundled simulator, record from it for DEMO_SECONDS, show the result
	@bash scripts/demo.sh $(SIM_PORT) $(DEMO_SECONDS)

sim: install ## run the Bybit V5 simulator on SIM_PORT (for network=local) until Ctrl-C
	@$(UV) run python scripts/foreground.py $(UV) run bybit-sim --port $(SIM_PORT)

# Coverage of the workspace's packages, in the summary before pytest's last line.
COVERAGE := $(foreach p,recorder recorder_tools event_saver bybit_adapter grid_db bybit_records bybit_sim,--cov=$(p))
test: install ## run the whole test suite, with a coverage summary
	$(UV) run pytest -q $(COVERAGE) --cov-report=term:skip-covered

test-fast: install ## run the tests except the end-to-end ones and the bench smoke
	$(UV) run pytest -q -m "not e2e and not bench"

soak: install ## randomized fault soak: SOAK_SECONDS (default 600) of drops, pauses, black holes ...
	SOAK_SECONDS=$${SOAK_SECONDS:-600} $(UV) run pytest -q -s -m soak -p no:cacheprovider

bench: install ## benchmarks (~7 min, 2 cores): print the table, write docs/benchmarks.md
	UV="$(UV)" $(UV) run python bench/run.py $(ARGS)

check: install ## check a session against a truth: make check SESSION=outputs/... TRUTH=http://127.0.0.1:8765
	$(UV) run recorder-check $(SESSION) --truth $(TRUTH) $(ARGS)

lint: install ## ruff and mypy --strict
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy libs/bybit_records/src libs/bybit_adapter/src libs/grid_db/src libs/event_saver/src apps/bybit_sim/src apps/recorder/src apps/recorder_tools/src bench testing

fmt: install ## format and auto-fix
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

clean: ## remove caches (keeps outputs/)
	rm -rf .pytest_cache .mypy_cache .ruff_cache
