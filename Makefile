# Two commands do all the set-up on a fresh machine with Python 3.11+ and make:
#   make run   - the local stack (Bedrock emulator + the app) in the foreground
#   make test  - flake8 and the whole pytest suite (installs Debian's chromium
#                for the browser tests when it is missing)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deps-stamp
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.deps-stamp
# A clean interpreter holding only what the Lambda runtime holds (boto3 and
# botocore at its versions): the packaged artifact runs on it in the tests.
LAMBDA_VENV := .venv-lambda
LAMBDA_STAMP := $(LAMBDA_VENV)/.deps-stamp
JS_DIR := tests/e2e/js
JS_STAMP := $(JS_DIR)/node_modules/.deps-stamp
# Codex CLI for its end-to-end test: its own lockfile, as its npm package
# carries a ~400 MB native binary the other JS clients need not wait for.
CODEX_DIR := tests/e2e/codex
CODEX_STAMP := $(CODEX_DIR)/node_modules/.deps-stamp
STAGES := dev prod

.PHONY: run test lint venv bench clean check-templates browser botocore-data bytecode

# The virtualenv is (re)built only when a requirements file changed.
$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "make: Python 3.11 or newer is needed (set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	@touch $(STAMP)

# checkov pins boto3/packaging versions that clash with the app's: its own venv.
$(CHECKOV_STAMP): requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $(CHECKOV_STAMP)

$(LAMBDA_STAMP): requirements-lambda-runtime.txt
	@test -x $(LAMBDA_VENV)/bin/python || $(PYTHON) -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-lambda-runtime.txt
	@touch $(LAMBDA_STAMP)

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

venv: $(STAMP) $(CHECKOV_STAMP) $(LAMBDA_STAMP) $(JS_STAMP) $(CODEX_STAMP)

# The browser tests drive Debian's Chromium through Playwright, which never
# downloads a browser of its own here: the system package is installed once,
# when missing (as root, as CI runs; sudo otherwise).
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
		echo "make: installing Debian's chromium for the browser tests"; \
		sudo=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null; }

# chalicelib/awsdata, the botocore data the app's clients read (see
# scripts/botocore_data.py): rewrite it after raising either botocore pin.
botocore-data: $(STAMP) $(LAMBDA_STAMP)
	$(PY) scripts/botocore_data.py --rules-from \
		"$$($(LAMBDA_VENV)/bin/python -c 'import botocore, os; print(os.path.join(os.path.dirname(botocore.__file__), "data"))')"

run: $(STAMP)
	@exec $(PY) -m devstack.run

lint: $(STAMP)
	$(PY) -m flake8

test: $(STAMP) $(CHECKOV_STAMP) $(LAMBDA_STAMP) $(JS_STAMP) $(CODEX_STAMP) browser
	$(PY) -m flake8
	$(PY) -m pytest

# What CI runs after the tests, and what a deploy would ship: each stage packaged
# by Chalice, then cfn-lint and checkov over those and infra/, the workflows
# against GitHub's schema and zizmor, and the IAM policies against their source.
# chalicelib's hash-checked bytecode, which chalice package and deploy ship
# (scripts/compile_bytecode.py says why).
bytecode: $(STAMP)
	$(PY) scripts/compile_bytecode.py

check-templates: $(STAMP) $(CHECKOV_STAMP) bytecode
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

bench: $(STAMP)
	$(PY) bench/overhead.py

# The documentation site (mkdocs.yml) into site/: strict, so a broken link or
# anchor fails the build (tests/functional/test_docs_site.py builds it too).
.PHONY: docs cost
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# docs/cost.md, computed from the prices and the templates (scripts/cost.py);
# a test fails when the page and the script disagree.
cost: $(STAMP)
	$(PY) scripts/cost.py --write docs/cost.md

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(LAMBDA_VENV) $(JS_DIR)/node_modules $(CODEX_DIR)/node_modules .pytest_cache build site
