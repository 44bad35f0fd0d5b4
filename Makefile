# Two commands do all the set-up on a fresh machine with Python 3.11+ and make:
#   make run   - the local stack (Bedrock emulator + the app) in the foreground;
#                installs only what the app and the stack need
#   make test  - flake8 and the whole pytest suite; installs the test toolchain
#                too (and Debian's chromium for the browser tests when missing)
# `make help` lists every target. Every install reads a hash lock
# (requirements*.txt, written by `make lock` from requirements*.in) with
# pip's --require-hashes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# pip as make runs it: hash-checked, its own progress shown (no --quiet), and
# --no-compile: Python compiles what is imported, on first import, instead of
# every file at install (that tripled the light install's CPU time, +55 MB).
PIP_INSTALL := -m pip install --require-hashes --no-compile --disable-pip-version-check
# Two stamps in the one venv: `make run` then `make test` only adds the test
# toolchain, and `make test` on a fresh clone does both.
RUN_STAMP := $(VENV)/.run-stamp
STAMP := $(VENV)/.deps-stamp
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.deps-stamp
# A clean interpreter holding only what the Lambda runtime holds (boto3 and
# botocore at its versions): the packaged artifact runs on it in the tests.
LAMBDA_VENV := .venv-lambda
LAMBDA_STAMP := $(LAMBDA_VENV)/.deps-stamp
# uv, which `make lock` compiles the locks with (scripts/lock.py says why).
LOCK_VENV := .venv-lock
LOCK_STAMP := $(LOCK_VENV)/.deps-stamp
JS_DIR := tests/e2e/js
JS_STAMP := $(JS_DIR)/node_modules/.deps-stamp
# Codex CLI for its end-to-end test: its own lockfile, as its npm package
# carries a ~400 MB native binary the other JS clients need not wait for.
CODEX_DIR := tests/e2e/codex
CODEX_STAMP := $(CODEX_DIR)/node_modules/.deps-stamp
STAGES := dev prod

.DEFAULT_GOAL := help
.PHONY: help run test lint venv lock bench clean check-templates browser botocore-data bytecode tokenizer docs cost

help: ## this list
	@echo "make TARGET, one of:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  \1\t\2/' | expand -t 20

run: $(RUN_STAMP) ## the local stack (app, Bedrock emulator, moto, jobs worker) in the foreground
	@exec $(PY) -m devstack.run

lint: $(STAMP) ## flake8
	$(PY) -m flake8

test: $(STAMP) $(CHECKOV_STAMP) $(LAMBDA_STAMP) $(JS_STAMP) $(CODEX_STAMP) browser ## flake8 and the whole test suite (installs the test toolchain)
	$(PY) -m flake8
	$(PY) -m pytest

# $(call ensure-venv,DIR): DIR's virtualenv, created with a Python 3.11+ when missing.
define ensure-venv
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "make: Python 3.11 or newer is needed (set PYTHON=...)"; exit 1; }
	@test -x $(1)/bin/python || { echo "make: creating the virtualenv $(1)"; $(PYTHON) -m venv $(1); }
endef

# Each venv is (re)built only when its lock changed.
$(RUN_STAMP): requirements-run.txt requirements-run-nodeps.txt
	$(call ensure-venv,$(VENV))
	@echo "make: [1/2] installing the app and the local stack into $(VENV) ($$(grep -c '^[A-Za-z]' requirements-run.txt) packages, requirements-run.txt)"
	$(PY) $(PIP_INSTALL) -r requirements-run.txt
	$(PY) $(PIP_INSTALL) --no-deps -r requirements-run-nodeps.txt
	@touch $@

$(STAMP): $(RUN_STAMP) requirements-dev.txt requirements-nodeps.txt
	@echo "make: [2/2] installing the test toolchain into $(VENV) ($$(grep -c '^[A-Za-z]' requirements-dev.txt) packages, requirements-dev.txt)"
	$(PY) $(PIP_INSTALL) -r requirements-dev.txt
	$(PY) $(PIP_INSTALL) --no-deps -r requirements-nodeps.txt
	@touch $@

# checkov pins boto3/packaging versions that clash with the app's: its own venv.
$(CHECKOV_STAMP): requirements-checkov.txt
	$(call ensure-venv,$(CHECKOV_VENV))
	@echo "make: installing checkov into $(CHECKOV_VENV) (requirements-checkov.txt)"
	$(CHECKOV_VENV)/bin/python $(PIP_INSTALL) -r requirements-checkov.txt
	@touch $@

$(LAMBDA_STAMP): requirements-lambda-runtime.txt
	$(call ensure-venv,$(LAMBDA_VENV))
	@echo "make: installing the Lambda runtime's boto3 into $(LAMBDA_VENV) (requirements-lambda-runtime.txt)"
	$(LAMBDA_VENV)/bin/python $(PIP_INSTALL) -r requirements-lambda-runtime.txt
	@touch $@

$(LOCK_STAMP): requirements-lock.txt
	$(call ensure-venv,$(LOCK_VENV))
	$(LOCK_VENV)/bin/python $(PIP_INSTALL) -r requirements-lock.txt
	@touch $@

# Add or raise a pin in a requirements*.in, then `make lock`; the pins of the
# other packages stay unless ARGS=--upgrade (or ARGS="--upgrade-package NAME").
lock: $(LOCK_STAMP) ## rewrite the hash locks (requirements*.txt) from requirements*.in
	$(LOCK_VENV)/bin/python scripts/lock.py $(ARGS)

# The JS client tests' packages (tests/e2e/js), exactly as locked, again only
# when the lockfile changed.
$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "make: node and npm are needed for the JS client tests"; exit 1; }
	npm ci --prefix $(JS_DIR) --silent --no-audit --no-fund --prefer-offline
	@touch $(JS_STAMP)

$(CODEX_STAMP): $(CODEX_DIR)/package.json $(CODEX_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "make: node and npm are needed for the Codex CLI test"; exit 1; }
	npm ci --prefix $(CODEX_DIR) --silent --no-audit --no-fund --prefer-offline
	@touch $(CODEX_STAMP)

venv: $(STAMP) $(CHECKOV_STAMP) $(LAMBDA_STAMP) $(JS_STAMP) $(CODEX_STAMP) ## every virtualenv and the JS packages make test uses

# The browser tests drive Debian's Chromium through Playwright, which never
# downloads a browser of its own here: the system package is installed once,
# when missing (as root, as CI runs; sudo otherwise).
CHROMIUM ?= /usr/bin/chromium
browser: ## Debian's chromium for the browser tests, when missing
	@test -x $(CHROMIUM) || { \
		echo "make: installing Debian's chromium for the browser tests"; \
		sudo=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null; }

# chalicelib/awsdata, the botocore data the app's clients read (see
# scripts/botocore_data.py): rewrite it after raising either botocore pin.
botocore-data: $(RUN_STAMP) $(LAMBDA_STAMP) ## rewrite chalicelib/awsdata after raising a botocore pin
	$(PY) scripts/botocore_data.py --rules-from \
		"$$($(LAMBDA_VENV)/bin/python -c 'import botocore, os; print(os.path.join(os.path.dirname(botocore.__file__), "data"))')"

# What CI runs after the tests, and what a deploy would ship: each stage packaged
# by Chalice, then cfn-lint and checkov over those and infra/, the workflows
# against GitHub's schema and zizmor, and the IAM policies against their source.
# chalicelib's hash-checked bytecode, which chalice package and deploy ship
# (scripts/compile_bytecode.py says why).
bytecode: $(RUN_STAMP) ## chalicelib's hash-checked bytecode, which the package ships
	$(PY) scripts/compile_bytecode.py

# Meta's Llama 3 tokenizer file, which the package ships (scripts/llama_tokenizer.py
# says why it is copied at build time, not committed).
tokenizer: $(RUN_STAMP) ## copy Meta's Llama 3 tokenizer file into the package (checked by its hash)
	$(PY) scripts/llama_tokenizer.py

check-templates: $(STAMP) $(CHECKOV_STAMP) bytecode tokenizer ## chalice package each stage; cfn-lint, checkov, the workflows' schema, zizmor
	$(PY) scripts/gen_policies.py --check
	@for stage in $(STAGES); do \
		rm -rf build/$$stage; \
		AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(VENV)/bin/chalice package --stage $$stage build/$$stage >/dev/null || exit 1; \
		echo "packaged $$stage -> build/$$stage/sam.json"; \
	done
	$(VENV)/bin/cfn-lint infra/*.yaml $(foreach s,$(STAGES),build/$(s)/sam.json)
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml $(foreach f,$(wildcard infra/*.yaml),-f $(f)) $(foreach s,$(STAGES),-f build/$(s)/sam.json)
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(VENV)/bin/zizmor --offline .github/workflows/

bench: $(STAMP) ## the handler's overhead (bench/overhead.py)
	$(PY) bench/overhead.py

# The documentation site (mkdocs.yml) into site/: strict, so a broken link or
# anchor fails the build (tests/functional/test_docs_site.py builds it too).
docs: $(STAMP) ## the documentation site into site/ (strict: a broken link or anchor fails)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# docs/cost.md, computed from the prices and the templates (scripts/cost.py);
# a test fails when the page and the script disagree.
cost: $(STAMP) ## rewrite docs/cost.md from the prices and the templates (scripts/cost.py)
	$(PY) scripts/cost.py --write docs/cost.md

clean: ## remove every virtualenv, node_modules and build output
	rm -rf $(VENV) $(CHECKOV_VENV) $(LAMBDA_VENV) $(LOCK_VENV) $(JS_DIR)/node_modules $(CODEX_DIR)/node_modules .pytest_cache build site
