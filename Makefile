# The README's two commands: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONSTRAINTS := constraints/test.txt
DEMO_EXTRAS ?= torch
TEST_EXTRAS ?= test,torch,gpu,tune,trl,cloud
PYTEST_ARGS ?=

.PHONY: demo test test-quick lint system-deps clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# A stamp per extras set: reinstall only when pyproject.toml or the pins change.
$(VENV)/.installed-%: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[$*]"
	@touch $@

demo: $(VENV)/.installed-$(DEMO_EXTRAS)
	bash scripts/demo.sh $(VENV)

system-deps:
	bash tests/system/install-apt.sh

# The whole suite: everything that needs no SLURM cluster on two workers, then the cluster tests
# one at a time (their clusters share daemons, ports and cgroups).
test: $(VENV)/.installed-$(TEST_EXTRAS) system-deps
	$(VENV)/bin/ruff check scripts tests hatch_build.py
	$(PY) -m pytest -m "not slurm" -n 2 $(PYTEST_ARGS)
	$(PY) -m pytest -m slurm $(PYTEST_ARGS)

# For developers between commits: everything but the tests marked slow (real trainer runs,
# the SLURM cluster, ssh end to end), on every core. CI runs `make test`, the whole suite.
test-quick: $(VENV)/.installed-$(TEST_EXTRAS)
	$(VENV)/bin/ruff check scripts tests hatch_build.py
	$(PY) -m pytest -m "not slow and not slurm" -n auto $(PYTEST_ARGS)

lint: $(VENV)/.installed-$(TEST_EXTRAS)
	$(VENV)/bin/ruff check scripts tests hatch_build.py
	$(VENV)/bin/ruff format --check scripts tests

clean-venv:
	rm -rf $(VENV)
