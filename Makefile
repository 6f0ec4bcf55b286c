# Set-up commands for a fresh machine (Python >= 3.10). PyTorch is installed first, pinned, so that no
# looser requirement pulls a different build.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: demo test install install-dev

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-dev: $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test,w2v,gbdt,train,plm,plots,web,distributed]'

# predict disorder for the example FASTA with the shipped default model
demo: install
	$(BIN)/idrkit predict examples/example.fasta -o example_disorder.tsv
	head -n 12 example_disorder.tsv

test: install-dev
	$(BIN)/python -m pytest -q
