# The two commands of the README: `make run` and `make test`.
# Needs only Python 3.11+ and make: uv is installed into .tools/ on first use,
# then the locked environment is synced into .venv/.

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test lint typecheck audit deploy-check bench soak clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --python $(PYTHON)
	touch $@

run: $(VENV)/.synced
	$(VENV)/bin/figachechnaya serve --host 127.0.0.1 --port 8000

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/bandit -q -r app workers --severity-level medium

tools/checkov/.venv/.synced: tools/checkov/pyproject.toml tools/checkov/uv.lock | $(UV)
	$(UV) sync --project tools/checkov --locked --quiet
	touch $@

# Known vulnerabilities in the locked dependencies. Needs the PyPI JSON API (the
# vulnerability data), which the GitLab pipeline reaches; this sandbox does not.
audit: $(VENV)/.synced
	$(UV) export --frozen --no-emit-project --no-hashes --quiet > .audit-requirements.txt
	$(VENV)/bin/pip-audit --strict --no-deps --disable-pip -r .audit-requirements.txt
	rm -f .audit-requirements.txt

# Lighthouse for tests/browser/test_lighthouse.py, exactly as locked (needs node ≥ 18.20 + npm).
tools/lighthouse/node_modules/.installed: tools/lighthouse/package.json tools/lighthouse/package-lock.json
	npm ci --prefix tools/lighthouse --no-audit --no-fund --loglevel=error
	touch $@

deploy-check: $(VENV)/.synced tools/checkov/.venv/.synced
	$(VENV)/bin/pytest tests/deploy

typecheck: $(VENV)/.synced
	$(VENV)/bin/mypy

test: lint typecheck tools/checkov/.venv/.synced tools/lighthouse/node_modules/.installed
	$(VENV)/bin/pytest
	$(VENV)/bin/python -m bench --docs test-artifacts soak --seconds 60

# The benchmark of issue 7: distributed stack on loopback, wrk as load generator;
# writes docs/benchmarks.md and docs/benchmarks.png, fails when a target is missed.
bench: $(VENV)/.synced
	$(VENV)/bin/python -m bench

# The soak alone (also the last step of `make test`): writes docs/soak.md.
soak: $(VENV)/.synced
	$(VENV)/bin/python -m bench soak --seconds 60

clean:
	rm -rf $(TOOLS) $(VENV) var .pytest_cache .mypy_cache .ruff_cache tools/lighthouse/node_modules
