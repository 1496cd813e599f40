# Set-up and everyday commands. Everything lives in a local .venv that is created once and reused.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install devnet test bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Without a GPU take the small CPU build of torch first; with one, pip resolves the CUDA build.
	if command -v nvidia-smi >/dev/null 2>&1; then :; else $(BIN)/pip install -q torch==2.13.0 || $(BIN)/pip install -q --index-url https://download.pytorch.org/whl/cpu torch; fi
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

devnet: $(STAMP)
	$(BIN)/subnet devnet $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

bench: $(STAMP)
	$(BIN)/python scripts/bench_eval.py
	$(BIN)/python scripts/bench_data.py
	$(BIN)/python scripts/bench_train.py

clean:
	rm -rf $(VENV) .pytest_cache
