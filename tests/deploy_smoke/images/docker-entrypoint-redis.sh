#!/bin/sh
# Runs its arguments, as the official redis image's entrypoint does once it has dropped to
# the user redis (this image starts as that user). REDIS_PORT, when set, moves the port of
# a `redis-server` command (CI runs every service on the host's network).
set -eu
if [ "${1:-}" = redis-server ] && [ -n "${REDIS_PORT:-}" ]; then
  exec "$@" --port "$REDIS_PORT"
fi
exec "$@"
