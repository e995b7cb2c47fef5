#!/usr/bin/env bash
# Builds labci's images on this machine's Docker engine, with no registry to pull from:
#
#   1. a base image: Debian bookworm by debootstrap, with Debian's python3 and its venv
#      module and this machine's extra CA certificates, `docker import`ed as
#      labci-local/bookworm:<key> (the key hashes what goes in); an existing tag is reused,
#      so debootstrap (45-90 s) runs once per machine;
#   2. labci/server:local and labci/runner:local from deploy/docker/*.Dockerfile with
#      --build-arg BASE=<that base>, exactly as a user builds them (the Dockerfiles install
#      labci's wheels and the dependency versions locked in uv.lock);
#   3. stand-ins for the official postgres and redis images (tests/deploy_smoke/images/),
#      from Debian's postgresql and redis-server packages on the same base.
#
# Idempotent: the engine's layer cache makes a second run take seconds. Needs root (for
# debootstrap), the engine (DOCKER_HOST, default unix:///run/labci-docker.sock; see
# scripts/docker-engine.sh) and Debian's mirror and PyPI (builds use the host's network).
# Prints the tags it built, one `NAME=TAG` a line, as docker-compose variables.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOCKER_HOST="${DOCKER_HOST:-unix:///run/labci-docker.sock}"
# The classic builder: what Debian's docker-compose 1.29 builds with, and no buildx needed.
export DOCKER_BUILDKIT=0
MIRROR="${LABCI_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates
# The base's tag names what it is made of: bump RECIPE when build_base changes.
RECIPE=2
KEY=$(
  echo "$RECIPE $SUITE $PACKAGES"
  cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true
)
KEY=$(sha256sum <<<"$KEY" | cut -c1-12)
BASE="labci-local/bookworm:$KEY"

log() { echo "build-images: $*" >&2; }
scratch=$(mktemp -d /tmp/labci-build-images.XXXXXX)  # a root filesystem, build logs
trap 'rm -rf "$scratch"' EXIT

build_base() {
  local rootfs="$scratch/rootfs"
  command -v debootstrap >/dev/null 2>&1 || {
    log "installing debootstrap (apt-get)…"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  log "debootstrap $SUITE ($PACKAGES) from $MIRROR…"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >/dev/null
  # This machine's own certificate authorities (a TLS-inspecting proxy's, say), so that
  # builds on the base reach PyPI as the host does; pip and uv read the system bundle.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
  fi
  # Like Debian's own images: apt keeps no packages or caches in layers built on this.
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
  tar --numeric-owner -C "$rootfs" -c . |
    docker import --change 'ENV LANG=C.UTF-8' \
      --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
      --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
      --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
}

if docker image inspect "$BASE" >/dev/null 2>&1; then
  log "reusing $BASE"
else
  build_base
fi

# docker build with the host's network (the engine has no bridge).
build() {
  local tag=$1
  shift
  docker build --network host --build-arg "BASE=$BASE" --tag "$tag" "$@"
}

# The four builds run at once: a cold build is mostly downloads (PyPI, Debian's mirror).
SERVER=labci/server:local
RUNNER=labci/runner:local
POSTGRES=labci-local/postgres:15
REDIS=labci-local/redis:7
declare -A pids
start() {
  local name=$1
  shift
  log "building $name…"
  build "$@" >"$scratch/$name.log" 2>&1 &
  pids[$name]=$!
}
start server "$SERVER" --file deploy/docker/server.Dockerfile .
start runner "$RUNNER" --file deploy/docker/runner.Dockerfile .
start postgres "$POSTGRES" --file tests/deploy_smoke/images/postgres.Dockerfile \
  tests/deploy_smoke/images
start redis "$REDIS" --file tests/deploy_smoke/images/redis.Dockerfile tests/deploy_smoke/images
failed=0
for name in "${!pids[@]}"; do
  if ! wait "${pids[$name]}"; then
    log "building $name failed:"
    grep -v -e '^DEPRECATED' -e '^            ' "$scratch/$name.log" | tail -n 40 >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || exit 1
# The images these tags named before (rebuilt now) are dangling: drop them, and only them.
docker image prune --force --filter label=org.labci.image >/dev/null
printf '%s\n' "LABCI_BASE_IMAGE=$BASE" "LABCI_RUNNER_BASE_IMAGE=$BASE" \
  "LABCI_SERVER_IMAGE=$SERVER" "LABCI_RUNNER_IMAGE=$RUNNER" \
  "LABCI_POSTGRES_IMAGE=$POSTGRES" "LABCI_REDIS_IMAGE=$REDIS"
