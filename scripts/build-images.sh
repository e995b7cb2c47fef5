#!/usr/bin/env bash
# Builds labci's images on this machine's Docker engine, with no registry to pull from:
#
#   1. a base image: Debian bookworm by debootstrap, with Debian's python3 and its venv
#      module, `docker import`ed as labci-local/bookworm:<key> (the key hashes the recipe;
#      an existing tag is reused, so this costs ~45 s once per machine);
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
KEY=$(
  printf '%s %s\n' "$SUITE" "$PACKAGES"
  sed -n '/^build_base()/,/^}/p' "$0"
  cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true
)
KEY=$(sha256sum <<<"$KEY" | cut -c1-12)
BASE="labci-local/bookworm:$KEY"

log() { echo "build-images: $*" >&2; }

build_base() {
  local rootfs
  rootfs=$(mktemp -d /tmp/labci-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' RETURN
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

# docker build with the host's network (the engine has no bridge) and no prompts.
build() {
  local tag=$1
  shift
  log "building $tag…"
  docker build --quiet --network host --build-arg "BASE=$BASE" --tag "$tag" "$@" >/dev/null
}

SERVER=labci/server:local
RUNNER=labci/runner:local
POSTGRES=labci-local/postgres:15
REDIS=labci-local/redis:7
build "$SERVER" --file deploy/docker/server.Dockerfile .
build "$RUNNER" --file deploy/docker/runner.Dockerfile .
build "$POSTGRES" --file tests/deploy_smoke/images/postgres.Dockerfile tests/deploy_smoke/images
build "$REDIS" --file tests/deploy_smoke/images/redis.Dockerfile tests/deploy_smoke/images
# The images these tags named before (rebuilt now) are dangling: drop them, and only them.
docker image prune --force --filter label=org.labci.image >/dev/null
printf '%s\n' "LABCI_BASE_IMAGE=$BASE" "LABCI_RUNNER_BASE_IMAGE=$BASE" \
  "LABCI_SERVER_IMAGE=$SERVER" "LABCI_RUNNER_IMAGE=$RUNNER" \
  "LABCI_POSTGRES_IMAGE=$POSTGRES" "LABCI_REDIS_IMAGE=$REDIS"
