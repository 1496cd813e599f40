# Set-up and everyday commands. Everything lives in a local .venv that is created once and reused.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A second venv with every direct dependency at the lower bound pyproject.toml states (torch aside).
VENV_MIN := .venv-min
MIN_STAMP := $(VENV_MIN)/.installed
CPU_TORCH = if command -v nvidia-smi >/dev/null 2>&1; then :; else $(1)/pip install -q torch==2.13.0 || $(1)/pip install -q --index-url https://download.pytorch.org/whl/cpu torch; fi

.PHONY: install devnet test test-min bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Without a GPU take the small CPU build of torch first; with one, pip resolves the CUDA build.
	$(call CPU_TORCH,$(BIN))
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

$(MIN_STAMP): pyproject.toml scripts/min_constraints.py
	rm -rf $(VENV_MIN) && $(PY) -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/pip install -q --upgrade pip
	$(call CPU_TORCH,$(VENV_MIN)/bin)
	$(VENV_MIN)/bin/python scripts/min_constraints.py --extra test --skip torch > $(VENV_MIN)/constraints.txt
	$(VENV_MIN)/bin/pip install -q -c $(VENV_MIN)/constraints.txt -e '.[test]'
	$(VENV_MIN)/bin/pip check
	touch $(MIN_STAMP)

install: $(STAMP)

devnet: $(STAMP)
	$(BIN)/subnet devnet $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

# The suite against the lowest versions pyproject.toml allows, so no lower bound can lie.
test-min: $(MIN_STAMP)
	$(VENV_MIN)/bin/python -m pytest $(ARGS)

bench: $(STAMP)
	$(BIN)/python scripts/bench_eval.py
	$(BIN)/python scripts/bench_data.py
	$(BIN)/python scripts/bench_train.py

clean:
	rm -rf $(VENV) $(VENV_MIN) .pytest_cache
