# Two commands matter: `make run` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# make lint skips `nginx -t` of deploy/nginx/votes.conf when nginx is not installed;
# CI (.ci/run) installs it and sets NGINX_OPTIONAL=0.
NGINX_OPTIONAL ?= 1

# The lock files pin every package of the tree (with hashes) for Python 3.11 on Linux;
# pyproject.toml has the ranges. `make lock` re-resolves after a range changed, keeping
# the current pins where they still fit; `make lock-upgrade` takes the newest allowed.
LOCK_FLAGS := --generate-hashes --python-version 3.11 --python-platform linux \
              --custom-compile-command "make lock" --quiet

.PHONY: run test test-quick typecheck lint format bench install lock lock-upgrade clean

# The project itself goes in with --no-deps: everything it needs came from the lock.
$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/votes up

test: $(STAMP)
	$(BIN)/pytest

# The quick loop: everything but the tests marked slow (real processes, browsers,
# deployment, fuzzing, large elections).
test-quick: $(STAMP)
	$(BIN)/pytest -m "not slow"

# mypy over service/, workers/, schemas/ and engine/ ([tool.mypy] in pyproject.toml).
typecheck: $(STAMP)
	$(BIN)/mypy

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	NGINX_OPTIONAL=$(NGINX_OPTIONAL) $(BIN)/python deploy/nginx/check.py
	@if command -v docker-compose >/dev/null; then \
	  docker-compose --env-file .ci/compose.env config --quiet && echo "docker-compose.yml: valid"; \
	else echo "docker-compose not installed: compose file not validated (apt-get install docker-compose)"; fi

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The runtime lock is resolved within the dev lock, so the image runs the versions tested.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev $(LOCK_FLAGS) $(UPGRADE) -o requirements-dev.lock
	$(BIN)/uv pip compile pyproject.toml -c requirements-dev.lock $(LOCK_FLAGS) -o requirements.lock

lock-upgrade:
	$(MAKE) lock UPGRADE=--upgrade

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache .mypy_cache .hypothesis
