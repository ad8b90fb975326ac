# Two commands matter: `make run` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# make lint skips `nginx -t` of deploy/nginx/votes.conf when nginx is not installed;
# CI (.ci/run) installs it and sets NGINX_OPTIONAL=0.
NGINX_OPTIONAL ?= 1

.PHONY: run test lint format bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/votes up

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile
	NGINX_OPTIONAL=$(NGINX_OPTIONAL) $(BIN)/python deploy/nginx/check.py
	@if command -v docker-compose >/dev/null; then \
	  docker-compose --env-file .ci/compose.env config --quiet && echo "docker-compose.yml: valid"; \
	else echo "docker-compose not installed: compose file not validated (apt-get install docker-compose)"; fi

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache .hypothesis
