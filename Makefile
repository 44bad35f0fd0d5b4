# Two commands do all the set-up on a fresh machine with Python 3.11+ and make:
#   make run   - the local stack (Bedrock emulator + the app) in the foreground
#   make test  - flake8 and the whole pytest suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deps-stamp

.PHONY: run test lint venv bench clean

# The virtualenv is (re)built only when a requirements file changed.
$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "make: Python 3.11 or newer is needed (set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	@exec $(PY) -m devstack.run

lint: $(STAMP)
	$(PY) -m flake8

test: $(STAMP)
	$(PY) -m flake8
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache
