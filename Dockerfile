# hobbit-classifier: one image per backend, with the model mounted at run time.
#
#   docker build --build-arg BACKEND=svm --target api -t hobbit-classifier:svm .  # scikit-learn, no TensorFlow
#   docker build --build-arg BACKEND=cnn --target api -t hobbit-classifier:cnn .  # adds tensorflow-cpu
#   docker build --build-arg BACKEND=svm --target trainer -t hobbit-classifier:svm-trainer .
#   docker run --rm -p 127.0.0.1:8000:8000 -v "$PWD/artifacts:/artifacts:ro" hobbit-classifier:svm
#
# Artifacts are not baked in: mount a folder holding <backend>/LATEST and <backend>/<version>/
# at /artifacts, so a newly trained version needs no rebuild. See docs/docker.md.
# Builds with the legacy builder and with BuildKit alike (no BuildKit-only syntax), so
# docker-compose 1.29 can build it too.

ARG BASE_IMAGE=debian:trixie-slim

# ---- base: Debian 13's Python 3.13, shared by both stages ---------------------------------
FROM ${BASE_IMAGE} AS base
ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# ---- builder: a venv with the project and the backend's extra -----------------------------
FROM base AS builder
# binutils for strip, below; it stays in this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv binutils \
 && rm -rf /var/lib/apt/lists/*
# Debian's Python refuses system-wide pip installs, hence the venv, copied whole below.
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
# How pip reaches its index, when the build machine needs it (all optional, none kept in the
# final image): PIP_INDEX_URL / PIP_EXTRA_INDEX_URL / PIP_TRUSTED_HOST / PIP_DEFAULT_TIMEOUT as
# build args; HTTP_PROXY, HTTPS_PROXY and NO_PROXY are build args Docker knows already.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG PIP_DEFAULT_TIMEOUT=120
WORKDIR /src

# The dependencies first, from the metadata alone (an empty package), so that a code change
# reuses this layer; then the project itself without its dependencies.
ARG BACKEND=svm
COPY pyproject.toml constraints.txt README.md ./
RUN case "$BACKEND" in \
        svm) extra=serve ;; \
        cnn) extra=cnn ;; \
        *) echo "BACKEND must be svm or cnn, not '$BACKEND'" >&2; exit 1 ;; \
    esac \
 && mkdir -p app && touch app/__init__.py \
 && pip install --quiet -c constraints.txt ".[$extra]" \
 && pip uninstall --quiet -y hobbit-classifier \
 && rm -rf app build *.egg-info
# What the service never runs or reads, measured in the svm image (docs/docker.md):
# - the packages' own test suites (about 70 MB, mostly NumPy's and SciPy's);
# - ONNX Runtime's model tools (quantization, tools, transformers; about 9 MB) and its C API
#   library libonnxruntime.so (35 MB): the Python module has the runtime built in and never
#   loads that file (not in its DT_NEEDED, never in a serving process's memory map);
# - the symbol tables of the wheels' shared libraries (about 40 MB for svm): strip keeps the
#   dynamic symbols that loading needs. A library strip broke would fail to load: after
#   stripping, the last step below builds every detector and feature extractor (their
#   networks, Haar cascades and libraries loaded) and imports the backend;
# - OpenCV's Haar cascades but the two app/pipeline/detect/haar.py loads (8.5 MB).
# The trainer image (FROM api) has the same packages: training runs no test suite either.
RUN cd /opt/venv/lib/python3*/site-packages \
 && find /opt/venv/lib -type d -name tests -prune -exec rm -rf {} + \
 && rm -rf onnxruntime/quantization onnxruntime/tools onnxruntime/transformers \
           onnxruntime/capi/libonnxruntime.so.* \
 && find /opt/venv -type f \( -name '*.so' -o -name '*.so.*' \) -exec strip --strip-unneeded {} + \
 && find cv2/data -name 'haarcascade_*.xml' ! -name haarcascade_frontalface_default.xml \
        ! -name haarcascade_eye.xml -delete
# Serving never imports the training or enrolment packages (import-linter's contracts in
# pyproject.toml), so only app/ is installed here; the trainer stage below adds both.
COPY app ./app
RUN pip install --quiet --no-deps --no-compile . \
 && python -m compileall -q /opt/venv/lib \
 && pip uninstall --quiet -y pip setuptools \
 && python -c "from app.backends import BACKENDS; \
from app.pipeline.detect import DETECTORS, create_detector; \
from app.pipeline.features import FEATURES, create_extractor; \
[create_detector(name) for name in DETECTORS.names]; [create_extractor(name) for name in FEATURES.names]; \
BACKENDS.load('$BACKEND')"

# ---- api: the service ------------------------------------------------------------------------
FROM base AS api
ARG BACKEND=svm
RUN groupadd --gid 10001 app \
 && useradd --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
 && mkdir -p /app /artifacts /data && chown app:app /app /artifacts /data
COPY --from=builder /opt/venv /opt/venv
# The root filesystem may be read-only (docker-compose.yml, deploy/k8s): bytecode is compiled
# at build time (PYTHONDONTWRITEBYTECODE above), and the little that writes at run time goes
# to /tmp, a tmpfs there: uploads over 1 MB (spooled by python-multipart), Keras' config dir.
ENV PATH=/opt/venv/bin:$PATH \
    CLASSIFIER_BACKEND=${BACKEND} \
    ARTIFACTS_DIR=/artifacts \
    HOST=0.0.0.0 \
    PORT=8000 \
    WORKERS=1 \
    KERAS_HOME=/tmp/keras \
    MPLCONFIGDIR=/tmp/matplotlib
LABEL org.opencontainers.image.title="hobbit-classifier" \
      org.opencontainers.image.description="Face classification service (backend: ${BACKEND}); mount artifacts at /artifacts"
WORKDIR /app
USER app
EXPOSE 8000
# Ready = the model is loaded, verified and warmed up (/readyz answers 200, and 503 before).
# The start period covers the load (TensorFlow's import and warm-up included); a check that
# passes in it marks the container healthy at once.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["python", "-m", "app", "serve", "--host", "0.0.0.0"]

# ---- trainer: the api plus the training and enrolment packages, for docker-compose.yml ------
# Built on the api image, so the two share every layer but these last ones (about 80 MB:
# matplotlib and its dependencies): a venv of its own would double the disk a build takes
# (2 GB more for cnn). pip itself left the api image; it runs here from the wheel Debian's
# venv support ships, and leaves again.
FROM api AS trainer
USER root
COPY --from=builder /usr/share/python-wheels /tmp/build/wheels
COPY constraints.txt /tmp/build/
COPY training /tmp/build/training
COPY enrolment /tmp/build/enrolment
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG PIP_DEFAULT_TIMEOUT=120
# The train extra's requirements, as the installed project's metadata states them.
RUN python -c 'from importlib.metadata import requires; print("\n".join(r.split(";")[0] for r in requires("hobbit-classifier") if "extra == \"train\"" in r))' \
        > /tmp/build/train.txt \
 && pip_wheel=$(echo /tmp/build/wheels/pip-*.whl) \
 && python "$pip_wheel/pip" install --quiet --no-cache-dir --no-compile \
        --disable-pip-version-check --cert /etc/ssl/certs/ca-certificates.crt \
        -c /tmp/build/constraints.txt -r /tmp/build/train.txt \
 && site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
 && cp -r /tmp/build/training /tmp/build/enrolment "$site/" \
 && python -m compileall -q "$site" \
 && rm -rf /tmp/build
USER app

# ---- the default target: a plain `docker build .` makes the api image -------------------
# (The legacy builder also builds the trainer stage on the way; BuildKit skips it, and
# `--target api` skips it with either.)
FROM api
