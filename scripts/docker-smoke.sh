#!/usr/bin/env bash
# Build the image, run it through docker-compose and check it answers for real:
#
#   scripts/docker-smoke.sh            # svm
#   scripts/docker-smoke.sh svm cnn    # both images (cnn adds TensorFlow to the build)
#
# For each backend: build hobbit-classifier:<backend>, check TensorFlow is absent from the
# svm image (and present in the cnn one), `docker-compose up -d`, wait until the container
# reports healthy, post a real photo to /v1/classify and check the JSON, check /readyz and
# /docs; check the container runs hardened as docker-compose.yml says (read-only root, no
# capabilities, no-new-privileges, memory and CPU limits) and still takes a photo over 1 MB
# (spooled to the /tmp tmpfs); then, under load from 4 clients, crash it (SIGKILL to its
# process, as the OOM killer would) and `docker kill` it, and time each gap until it is healthy
# again and count what the clients saw; then tear down (also on failure). The model served is the one artifacts/<backend>/LATEST
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
# `make run` on 8000 is not in the way), SMOKE_HEALTHY_TIMEOUT (s, default 300),
# SMOKE_RECOVERY_TIMEOUT (s, default 60: the longest a gap after a kill may last).
# CI (set on CI machines): drop each build's intermediate images, and a backend's images once it
# passed, so that both backends fit a CI machine's disk (cnn's TensorFlow alone is 2 GB a copy).
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
RECOVERY_TIMEOUT=${SMOKE_RECOVERY_TIMEOUT:-60}
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
TRAINER_PORT=${SMOKE_TRAINER_PORT:-18100}
compose() {
    CLASSIFIER_BACKEND=$backend HOST_PORT=$PORT TRAINER_PORT=$TRAINER_PORT HOST_ARTIFACTS_DIR=$artifacts \
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

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

health() { docker inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1"; }

check_hardened() { # CID: the container runs as docker-compose.yml says, and only /tmp is writable
    local cid=$1 settings status
    settings=$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}} {{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}' "$cid")
    read -r ro caps opts memory cpus <<<"$settings"
    [[ $ro == true && $caps == "[ALL]" && $opts == *no-new-privileges* && $memory -gt 0 && $cpus -gt 0 ]] ||
        die "not hardened: ReadonlyRootfs CapDrop SecurityOpt Memory NanoCpus = $settings"
    status=$(compose exec -T api grep -E '^(CapEff|NoNewPrivs)' /proc/1/status | tr -s '\t\r\n' '  ')
    [[ $status == "CapEff: 0000000000000000 NoNewPrivs: 1 " ]] || die "process 1 has: $status"
    ! compose exec -T api python -c 'open("/app/probe", "w")' 2>/dev/null || die "the root filesystem is writable"
    compose exec -T api python -c 'import tempfile; tempfile.TemporaryFile().write(b"x")' || die "/tmp is not writable"
    log "ok: read-only root, /tmp writable, no capabilities (CapEff 0), NoNewPrivs 1, memory limit $((memory / 1048576)) MiB, $((cpus / 1000000000)) CPUs"
}

memory_used() { # CID -> "now MiB, peak MiB" from the container's memory cgroup (v1 or v2)
    local dir
    for dir in "/sys/fs/cgroup/memory/docker/$1" "/sys/fs/cgroup/system.slice/docker-$1.scope"; do
        if [[ -r $dir/memory.max_usage_in_bytes ]]; then
            echo "$(($(cat "$dir/memory.usage_in_bytes") / 1048576)) MiB now, peak $(($(cat "$dir/memory.max_usage_in_bytes") / 1048576)) MiB"
            return
        elif [[ -r $dir/memory.peak ]]; then
            echo "$(($(cat "$dir/memory.current") / 1048576)) MiB now, peak $(($(cat "$dir/memory.peak") / 1048576)) MiB"
            return
        fi
    done
    docker stats --no-stream --format '{{.MemUsage}} now' "$1"
}

gap_under_load() { # LABEL COMMAND...: run COMMAND while 4 clients post photos; time until healthy again
    local label=$1 load_dir t0 t_ready="" t_healthy="" c cid_now outcomes clients=()
    shift
    load_dir=$(mktemp -d /tmp/docker-smoke-load.XXXXXX)
    for c in 1 2 3 4; do
        (
            while [[ ! -e $load_dir/stop ]]; do
                code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -F "file=@$PHOTO" "http://127.0.0.1:$PORT/v1/classify") || code="curl-exit-$?"
                echo "$code" >>"$load_dir/client-$c"
            done
        ) &
        clients+=($!)
    done
    sleep 3
    t0=$(now_ms)
    "$@"
    while :; do
        cid_now=$(compose ps -q api 2>/dev/null || true)
        if [[ -z $t_ready ]] && curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/readyz"; then
            t_ready=$(now_ms)
        fi
        if [[ -n $cid_now && $(health "$cid_now") == running/healthy ]]; then
            t_healthy=$(now_ms)
            [[ -n $t_ready ]] || t_ready=$t_healthy
            break
        fi
        (($(now_ms) - t0 < RECOVERY_TIMEOUT * 1000)) || {
            touch "$load_dir/stop"; wait "${clients[@]}"
            die "$label: not healthy again after $RECOVERY_TIMEOUT s"
        }
        sleep 0.2
    done
    sleep 2 # a little load after the recovery too
    touch "$load_dir/stop"
    wait "${clients[@]}"
    outcomes=$(cat "$load_dir"/client-* | sort | uniq -c | awk '{printf "%s%s x %s", sep, $2, $1; sep=", "}')
    rm -rf "$load_dir"
    gap_ready=$((t_ready - t0)) gap_healthy=$((t_healthy - t0))
    log "$label: /readyz 200 again after $((gap_ready / 1000)).$(printf '%03d' $((gap_ready % 1000))) s, docker health 'healthy' after $((gap_healthy / 1000)).$(printf '%03d' $((gap_healthy % 1000))) s; clients saw: $outcomes"
}

crash() { # SIGKILL the container's main process from the host: what the OOM killer does
    kill -9 "$(docker inspect -f '{{.State.Pid}}' "$(compose ps -q api)")"
}

wait_healthy() { # the api container healthy (it starts once the trainer is), within HEALTHY_TIMEOUT
    local t=$SECONDS state
    while :; do
        state=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$(compose ps -q api)")
        [[ $state == healthy ]] && return
        ((SECONDS - t < HEALTHY_TIMEOUT)) || die "api not healthy after ${HEALTHY_TIMEOUT} s (still $state)"
        sleep 1
    done
}

check_enrolment() { # the trainer enrols a person; the api serves the new version; both survive down && up
    local key=smoke-key person=smoke_person t version served
    curl -sf -o /dev/null "http://127.0.0.1:$TRAINER_PORT/readyz" || die "the trainer is not ready"
    status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TRAINER_PORT/v1/people")
    [[ $status == 403 ]] || die "enrolment without API_KEY answered $status, not 403"
    log "ok: trainer ready; enrolment refused (403) while API_KEY is unset"
    compose down >/dev/null 2>&1
    API_KEY=$key compose up -d --no-build >/dev/null 2>&1
    wait_healthy
    curl -sf -H "X-API-Key: $key" -F "id=$person" -F "name=Smoke Person" "http://127.0.0.1:$TRAINER_PORT/v1/people" >/dev/null ||
        die "POST /v1/people failed"
    t=$SECONDS
    body=$(curl -s -H "X-API-Key: $key" -F "files=@$PHOTO" -F "files=@$(ls "$DATA"/sean_astin/*.jpg | head -1)" \
        "http://127.0.0.1:$TRAINER_PORT/v1/people/$person/photos")
    version=$(printf '%s' "$body" | python3 -c 'import json, sys; b = json.load(sys.stdin)["build"]; assert b["status"] == "done", b; print(b["version"])') ||
        die "enrolment did not publish a version: $body"
    log "ok: enrolled $person with 2 photos: version $version in $((SECONDS - t)) s"
    compose down >/dev/null 2>&1 # keeps the named volumes
    API_KEY=$key compose up -d --no-build >/dev/null 2>&1
    wait_healthy
    curl -sf -H "X-API-Key: $key" "http://127.0.0.1:$TRAINER_PORT/v1/people" | grep -q "\"id\":\"$person\"" ||
        die "$person is gone after down && up"
    served=$(curl -s -H "X-API-Key: $key" "http://127.0.0.1:$PORT/v1/models" | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
    [[ $served == "$version" ]] || die "after down && up the api serves $served, not $version"
    known=$(curl -s -H "X-API-Key: $key" "http://127.0.0.1:$PORT/v1/models" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["classes"]))')
    [[ $known == 6 ]] || die "the api's model knows $known people, not the default model's five and $person"
    log "ok: after docker-compose down && up: $person still enrolled beside the five adopted, the api serves $version"
}

kill_and_up() { # docker kill is a manual stop: the engine does not restart it; compose up does
    local cid restarts
    cid=$(compose ps -q api)
    restarts=$(docker inspect -f '{{.RestartCount}}' "$cid")
    docker kill "$cid" >/dev/null
    sleep 2
    [[ $(docker inspect -f '{{.State.Status}} {{.RestartCount}}' "$cid") == "exited $restarts" ]] ||
        die "after docker kill: $(docker inspect -f '{{.State.Status}} {{.RestartCount}}' "$cid")"
    compose up -d --no-build >/dev/null 2>&1
}

summary=()
for backend in "${BACKENDS[@]}"; do
    log "== $backend: docker build"
    t=$SECONDS
    docker build --build-arg "BACKEND=$backend" --target api "${build_args[@]}" -t "$IMAGE:$backend" . \
        >"/tmp/docker-build-$backend.log" 2>&1 || {
        tail -40 "/tmp/docker-build-$backend.log"
        die "docker build failed (full log: /tmp/docker-build-$backend.log)"
    }
    docker build --build-arg "BACKEND=$backend" --target trainer "${build_args[@]}" -t "$IMAGE:$backend-trainer" . \
        >"/tmp/docker-build-$backend-trainer.log" 2>&1 || {
        tail -40 "/tmp/docker-build-$backend-trainer.log"
        die "docker build of the trainer image failed (full log: /tmp/docker-build-$backend-trainer.log)"
    }
    build_s=$((SECONDS - t))
    size=$(docker image inspect -f '{{.Size}}' "$IMAGE:$backend")
    trainer_size=$(docker image inspect -f '{{.Size}}' "$IMAGE:$backend-trainer")
    log "built $IMAGE:$backend in ${build_s} s, $((size / 1000000)) MB; the trainer adds $(((trainer_size - size) / 1000000)) MB on top"
    if [[ -n ${CI:-} ]]; then # a CI machine keeps no build cache: the builder stage's venv goes
        docker image prune -f >/dev/null
    fi
    log "docker's images now take $(docker system df --format '{{.Type}} {{.Size}}' | sed -n 's/^Images //p')"

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

    check_hardened "$cid"
    big=$(mktemp /tmp/docker-smoke-big.XXXXXX)
    docker run --rm -i --entrypoint python "$IMAGE:$backend" -c '
import sys
from PIL import Image
image = Image.open(sys.stdin.buffer).convert("RGB")
image.resize((image.width * 4, image.height * 4)).save(sys.stdout.buffer, "PNG", compress_level=0)' <"$PHOTO" >"$big"
    big_kb=$(($(stat -c %s "$big") / 1024))
    ((big_kb > 1024)) || die "the big photo is only ${big_kb} KB: python-multipart keeps up to 1 MB in memory"
    http POST /v1/classify -F "file=@$big;type=image/png"
    rm -f "$big"
    [[ $status == 200 && $body == *'"faces":[{'* ]] || die "a ${big_kb} KB photo (spooled to /tmp) answered $status: $body"
    log "ok: a ${big_kb} KB photo, spooled to the /tmp tmpfs, answered 200 with a face"
    log "memory: $(memory_used "$cid") (limit $(($(docker inspect -f '{{.HostConfig.Memory}}' "$cid") / 1048576)) MiB)"

    gap_under_load "crash (SIGKILL to the server process; restart: unless-stopped)" crash
    crash_s="$((gap_healthy / 1000)).$(printf '%03d' $((gap_healthy % 1000)))"
    [[ $(docker inspect -f '{{.RestartCount}}' "$(compose ps -q api)") -ge 1 ]] || die "the engine did not restart it"
    gap_under_load "docker kill, then docker-compose up -d" kill_and_up
    kill_s="$((gap_healthy / 1000)).$(printf '%03d' $((gap_healthy % 1000)))"
    if [[ $backend == svm ]]; then
        check_enrolment # a cnn build is a KerasTuner search (minutes): the svm run covers the trainer
    fi

    log "tearing down"
    compose down --volumes --remove-orphans >/dev/null 2>&1
    if [[ -n ${CI:-} ]]; then # and the next backend gets the disk this one's images took
        docker image rm -f "$IMAGE:$backend" "$IMAGE:$backend-trainer" >/dev/null
        docker image prune -f >/dev/null
    fi
    summary+=("$backend: build ${build_s}s, image $((size / 1000000)) MB, compose up -> healthy ${healthy_s}s ($served); healthy again ${crash_s}s after a crash, ${kill_s}s after docker kill + up")
done
backend=""

log "== summary"
log "base image: ${base_s}s (0 when it was already there)"
for s in "${summary[@]}"; do log "$s"; done
docker image ls --format 'table {{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -E "REPOSITORY|$IMAGE|debian"
log "PASSED in $((SECONDS - script_start)) s"
