# Two commands: `make run` starts the whole pipeline on an embedded Redis; `make test` tests it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint docs bench install clean constraints

run: $(STAMP)
	$(BIN)/flashpoint up --demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/flashpoint bench --json bench.json --plot bench.png

docs: $(STAMP)
	$(BIN)/flashpoint docs --out shared/asyncapi.json

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Refresh constraints.txt from the versions installed in the virtual environment.
constraints: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable > constraints.txt

clean:
	rm -rf $(VENV) .flashpoint .pytest_cache .mypy_cache .ruff_cache *.egg-info
