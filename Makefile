# Two entry points for a newcomer: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo test clean

$(BIN)/automl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/automl

# Installs, then runs a pruned search on bundled data (scikit-learn digits) and prints the leaderboard.
demo: install
	$(BIN)/automl search --space mlp --dataset digits --trials 30 --epochs 20 --pruner signal --seed 0 --storage sqlite:///demo.db --study demo --overwrite

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo.db .pytest_cache
