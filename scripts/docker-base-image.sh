#!/usr/bin/env bash
# Make the Dockerfile's base image (debian:trixie-slim, whose python3 is 3.13) locally, for machines that reach
# Debian's package mirror but no image registry. Nothing happens when the tag already exists,
# so a machine that can pull from a registry (or already ran this) is left alone.
#
#   scripts/docker-base-image.sh            # makes debian:trixie-slim if missing
#   BASE_TAG=debian:bookworm-slim SUITE=bookworm scripts/docker-base-image.sh
#
# How: debootstrap --variant=minbase from the apt mirror this machine already uses, trimmed
# like the official slim image (no docs, man pages or locales), then `docker import`.
# What the machine's own apt and TLS need is carried over, read from the machine, not written
# here: the Debian sources (moved to $SUITE) and apt's Acquire:: settings (proxy, Valid-Until), and the extra CA
# certificates in /usr/local/share/ca-certificates (on machines whose HTTPS goes through an
# intercepting proxy, pip inside the build fails certificate verification without them; they
# become trusted when the Dockerfile installs ca-certificates).
# Needs root, a running docker engine and debootstrap (installed with apt when missing).
set -euo pipefail

BASE_TAG=${BASE_TAG:-debian:trixie-slim}
SUITE=${SUITE:-trixie}

log() { printf '[docker-base-image] %s\n' "$*" >&2; }

if docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
    log "$BASE_TAG is already there"
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    log "needs root (debootstrap)"; exit 1
fi
if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

start=$SECONDS
work=$(mktemp -d /var/tmp/docker-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs

# The mirror this machine's apt uses for Debian itself (deb822 or one-line sources); if none is
# found, debootstrap's own default mirror is used.
mirror=""
if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [[ -z $mirror && -r /etc/apt/sources.list ]]; then
    mirror=$(awk -v s="$SUITE" '$1 == "deb" && $3 == s {print $2; exit}' /etc/apt/sources.list)
fi

log "debootstrap --variant=minbase $SUITE ${mirror:-the default mirror of debootstrap}"
debootstrap --variant=minbase --components=main "$SUITE" "$rootfs" $mirror >"$work/debootstrap.log" 2>&1 || {
    tail -30 "$work/debootstrap.log" >&2
    exit 1
}

# apt inside the image: the same Debian sources (with updates and security) as this machine,
# with this machine's suite name (bookworm, bookworm-updates, ...) replaced by $SUITE.
if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
    host_suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    sed ${host_suite:+-e "/^Suites:/s/\b$host_suite\b/$SUITE/g"} /etc/apt/sources.list.d/debian.sources \
        >"$rootfs/etc/apt/sources.list.d/debian.sources"
    rm -f "$rootfs/etc/apt/sources.list"
fi
# apt's Acquire:: settings of this machine (a proxy, or Check-Valid-Until off for a frozen mirror).
apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy|ftp::Proxy) ' \
    >"$rootfs/etc/apt/apt.conf.d/99host-acquire" || rm -f "$rootfs/etc/apt/apt.conf.d/99host-acquire"

# Extra CA certificates of this machine (see the top).
mkdir -p "$rootfs/usr/local/share/ca-certificates"
shopt -s nullglob
certs=(/usr/local/share/ca-certificates/*.crt)
if ((${#certs[@]})); then
    cp "${certs[@]}" "$rootfs/usr/local/share/ca-certificates/"
fi

# Slim like the official image: later apt installs skip docs, man pages and locales too.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'APT::Install-Recommends "false";' >"$rootfs/etc/apt/apt.conf.d/docker-no-recommends"
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$rootfs"/usr/share/{man,info,lintian}/* "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/cache/apt/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/tmp/* "$rootfs"/root/.cache
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true

log "docker import as $BASE_TAG"
tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --message "debootstrap --variant=minbase $SUITE, made by scripts/docker-base-image.sh" \
    - "$BASE_TAG" >/dev/null
size=$(docker image inspect -f '{{.Size}}' "$BASE_TAG")
log "made $BASE_TAG in $((SECONDS - start)) s, $((size / 1000000)) MB"
