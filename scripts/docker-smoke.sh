#!/usr/bin/env bash
# Build the image, run it through docker-compose and check it answers for real:
#
#   scripts/docker-smoke.sh            # svm
#   scripts/docker-smoke.sh svm cnn    # both images (cnn adds TensorFlow to the build)
#
# For each backend: build hobbit-classifier:<backend>, check TensorFlow is absent from the
# svm image (and present in the cnn one), `docker-compose up -d`, wait until the container
# reports healthy, post a real photo to /v1/classify and check the JSON, check /readyz and
# /docs, then tear down (also on failure). The model served is the one artifacts/<backend>/LATEST
# names. A backend with no model there gets a throwaway one trained in a few
# seconds (`--quick`, a dozen photos per person) with the project's .venv into a temporary
# folder that is mounted instead; without a .venv able to train it, that backend is built and
# checked but not served (said so in the output).
#
# Sets up what it needs first, each only when missing: docker.io, docker-compose, debootstrap
# and iptables from apt; a docker engine started by hand (no systemd here; left running);
# the local base image (scripts/docker-base-image.sh).
# How pip reaches its index is read from this machine at run time (PIP_INDEX_URL and friends,
# pip's config, proxy variables) and passed as build args; nothing about hosts is written here.
#
# Env: SMOKE_PHOTO (a photo with one known face), SMOKE_DATA (photos to train a throwaway model
# from), SMOKE_TRAIN=0 (never train one), SMOKE_PORT (host port, default 18000 so that a
# `make run` on 8000 is not in the way), SMOKE_HEALTHY_TIMEOUT (s, default 300).
set -euo pipefail

cd "$(dirname "$0")/.."
script_start=$SECONDS
BACKENDS=("$@")
((${#BACKENDS[@]})) || BACKENDS=(svm)
DATA=${SMOKE_DATA:-../shared/data/hobbits}
PHOTO=${SMOKE_PHOTO:-$DATA/elijah_wood/0c74cdc40321addb5d50a98e10887c37.jpg}
TRAIN=${SMOKE_TRAIN:-1}
PORT=${SMOKE_PORT:-18000}
HEALTHY_TIMEOUT=${SMOKE_HEALTHY_TIMEOUT:-300}
PROJECT=hobbit-smoke
IMAGE=hobbit-classifier

log() { printf '[docker-smoke %3ds] %s\n' "$((SECONDS - script_start))" "$*"; }
die() { log "FAIL: $*"; exit 1; }

for b in "${BACKENDS[@]}"; do
    [[ $b == svm || $b == cnn ]] || die "unknown backend '$b' (svm or cnn)"
done
[[ -f $PHOTO ]] || die "no photo at $PHOTO (set SMOKE_PHOTO)"

# ---- tools ----------------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v iptables >/dev/null || missing+=(iptables)
if ((${#missing[@]})); then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    log "installing ${missing[*]} (apt-get)"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The 28.x docker client some machines have has no buildx: use the classic builder, which is
# also what docker-compose 1.29 builds with.
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0

if ! docker info >/dev/null 2>&1; then
    log "starting dockerd (log: /var/log/dockerd.log)"
    nohup dockerd >/var/log/dockerd.log 2>&1 &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { tail -20 /var/log/dockerd.log; die "dockerd did not come up"; }
fi
log "docker $(docker version --format '{{.Server.Version}}'), $(docker-compose version --short 2>/dev/null || docker-compose --version)"

t=$SECONDS
scripts/docker-base-image.sh
base_s=$((SECONDS - t))

# ---- how pip reaches its index, from this machine --------------------------------------------
# Only http(s) locations travel into the build: file:// indexes and find-links are paths on
# this machine that the build cannot see. Proxy variables are build args Docker knows already.
pip_setting() { # ENV_NAME pip-config-key
    if [[ -n ${!1:-} ]]; then
        printf '%s\n' "${!1}"
    else
        python3 -m pip config get "global.$2" 2>/dev/null || true
    fi
}
only_http() { tr ' \n' '\n\n' | grep -E '^https?://' | paste -sd' ' - || true; }
build_args=()
passed=()
v=$(pip_setting PIP_INDEX_URL index-url | only_http)
[[ -z $v ]] || { build_args+=(--build-arg "PIP_INDEX_URL=$v"); passed+=(PIP_INDEX_URL); }
v=$(pip_setting PIP_EXTRA_INDEX_URL extra-index-url | only_http)
[[ -z $v ]] || { build_args+=(--build-arg "PIP_EXTRA_INDEX_URL=$v"); passed+=(PIP_EXTRA_INDEX_URL); }
v=$(pip_setting PIP_TRUSTED_HOST trusted-host | tr '\n' ' ' | sed 's/ *$//')
[[ -z $v ]] || { build_args+=(--build-arg "PIP_TRUSTED_HOST=$v"); passed+=(PIP_TRUSTED_HOST); }
v=$(pip_setting PIP_DEFAULT_TIMEOUT timeout)
[[ -z $v ]] || { build_args+=(--build-arg "PIP_DEFAULT_TIMEOUT=$v"); passed+=(PIP_DEFAULT_TIMEOUT); }
for p in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    [[ -z ${!p:-} ]] || { build_args+=(--build-arg "$p=${!p}"); passed+=("$p"); }
done
log "pip settings passed to the build: ${passed[*]:-none (the default index; TLS trust comes with the base image)}"

# ---- per backend ------------------------------------------------------------------------------
compose() {
    CLASSIFIER_BACKEND=$backend HOST_PORT=$PORT HOST_ARTIFACTS_DIR=$artifacts \
        docker-compose -p "$PROJECT" "$@"
}
scratch=""
artifacts=./artifacts
teardown() {
    local rc=$?
    [[ -z $scratch ]] || rm -rf "$scratch"
    if [[ -n ${backend:-} ]] && [[ -n $(compose ps -q 2>/dev/null) ]]; then
        if ((rc != 0)); then
            log "container logs (last 60 lines):"
            compose logs --no-color --tail=60 api || true
        fi
        log "tearing down"
        compose down --volumes --remove-orphans >/dev/null 2>&1 || true
    fi
    return "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

http() { # METHOD PATH [curl args...] -> body in $body, status in $status
    local method=$1 path=$2
    shift 2
    body=$(curl -sS -X "$method" -o - -w '\n%{http_code}' --max-time 60 "$@" "http://127.0.0.1:$PORT$path")
    status=${body##*$'\n'}
    body=${body%$'\n'*}
}

summary=()
for backend in "${BACKENDS[@]}"; do
    log "== $backend: docker build"
    t=$SECONDS
    docker build --build-arg "BACKEND=$backend" "${build_args[@]}" -t "$IMAGE:$backend" . >"/tmp/docker-build-$backend.log" 2>&1 || {
        tail -40 "/tmp/docker-build-$backend.log"
        die "docker build failed (full log: /tmp/docker-build-$backend.log)"
    }
    build_s=$((SECONDS - t))
    size=$(docker image inspect -f '{{.Size}}' "$IMAGE:$backend")
    log "built $IMAGE:$backend in ${build_s} s, $((size / 1000000)) MB"

    has_tf=0
    docker run --rm --entrypoint python "$IMAGE:$backend" -c \
        "import importlib.util, sys; sys.exit(importlib.util.find_spec('tensorflow') is not None)" || has_tf=1
    if [[ $backend == svm ]]; then
        ((has_tf == 0)) || die "the svm image contains TensorFlow"
        log "ok: no TensorFlow in the svm image"
    else
        ((has_tf == 1)) || die "the cnn image has no TensorFlow"
        log "ok: TensorFlow is in the cnn image"
    fi
    uid=$(docker run --rm --entrypoint id "$IMAGE:$backend" -u)
    [[ $uid != 0 ]] || die "the image runs as root"
    log "ok: runs as uid $uid"

    artifacts=./artifacts
    served="the committed model"
    if [[ ! -f $artifacts/$backend/LATEST ]]; then
        needs=(sklearn matplotlib tqdm)
        [[ $backend == svm ]] || needs+=(tensorflow keras_tuner)
        if [[ $TRAIN != 0 && -x .venv/bin/python ]] && .venv/bin/python -c "import $(IFS=,; echo "${needs[*]}")" 2>/dev/null; then
            [[ -n $scratch ]] || scratch=$(mktemp -d /tmp/docker-smoke.XXXXXX)
            artifacts=$scratch/artifacts
            mkdir -p "$artifacts"
            log "no artifacts/$backend/LATEST: training a throwaway $backend model (--quick) to serve"
            t=$SECONDS
            .venv/bin/python -m training train --data "$DATA" --backend "$backend" --artifacts "$artifacts" \
                --quick --max-per-class 12 >"$scratch/train-$backend.log" 2>&1 || {
                tail -20 "$scratch/train-$backend.log"
                die "training the throwaway $backend model failed"
            }
            chmod -R a+rX "$scratch"  # the container's user is not root
            served="a throwaway --quick model, trained in $((SECONDS - t)) s"
            log "trained in $((SECONDS - t)) s"
        else
            log "SKIP serving $backend: no artifacts/$backend/LATEST and no .venv to train one (make test builds it)"
            summary+=("$backend: build ${build_s}s, image $((size / 1000000)) MB, not served (no model)")
            continue
        fi
    fi

    log "== $backend: docker-compose up -d"
    t=$SECONDS
    compose up -d --no-build
    cid=$(compose ps -q api)
    state=starting
    while :; do
        state=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$cid")
        [[ $state == healthy ]] && break
        [[ $state == unhealthy || $state == exited || $state == dead ]] && die "container is $state"
        ((SECONDS - t < HEALTHY_TIMEOUT)) || die "not healthy after ${HEALTHY_TIMEOUT} s (still $state)"
        sleep 1
    done
    healthy_s=$((SECONDS - t))
    log "healthy ${healthy_s} s after compose up"

    http GET /readyz
    [[ $status == 200 ]] || die "/readyz answered $status: $body"
    log "ok: /readyz 200 $body"
    http GET /docs
    [[ $status == 200 && $body == *swagger* ]] || die "/docs answered $status"
    log "ok: /docs 200"
    http POST /v1/classify -F "file=@$PHOTO"
    [[ $status == 200 ]] || die "/v1/classify answered $status: $body"
    out=$(printf '%s' "$body" | python3 -c '
import json, sys
backend = sys.argv[1]
r = json.load(sys.stdin)
model = r["model"]
assert model["backend"] == backend, "model.backend is %s, not %s" % (model["backend"], backend)
assert model["version"], "no model.version"
faces = r["faces"]
assert isinstance(faces, list) and faces, f"faces is {faces}: a face was expected"
for f in faces:
    assert {"box", "label", "confidence", "probabilities"} <= f.keys(), f"face lacks fields: {f}"
    assert 0.0 <= f["confidence"] <= 1.0, f
    assert f["label"] == "unknown" or f["label"] in f["probabilities"], f
found = ", ".join("%s %.2f" % (f["label"], f["confidence"]) for f in faces)
print("model %s %s, %d face(s): %s" % (backend, model["version"], len(faces), found))
' "$backend" 2>&1) || die "/v1/classify JSON check failed: $out; body: $body"
    log "ok: /v1/classify $out"
    env_model_version=$(compose exec -T api python -c 'import os; print(os.environ.get("MODEL_VERSION", "<unset>"))')
    [[ $env_model_version == "<unset>" ]] || die "MODEL_VERSION leaked into the container as '$env_model_version'"

    log "tearing down"
    compose down --volumes --remove-orphans >/dev/null 2>&1
    summary+=("$backend: build ${build_s}s, image $((size / 1000000)) MB, compose up -> healthy ${healthy_s}s ($served)")
done
backend=""

log "== summary"
log "base image: ${base_s}s (0 when it was already there)"
for s in "${summary[@]}"; do log "$s"; done
docker image ls --format 'table {{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -E "REPOSITORY|$IMAGE|debian"
log "PASSED in $((SECONDS - script_start)) s"
