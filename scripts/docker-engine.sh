#!/usr/bin/env bash
# A Docker engine for the docker executor's tests, on a private socket (see DEVELOPERS.md):
# installs Debian's docker.io and busybox-static when missing, starts dockerd when the socket
# does not answer, and waits until it does. Idempotent; needs root (CI machines run as root).
set -euo pipefail
SOCKET="${LABCI_DOCKER_SOCKET:-/run/labci-docker.sock}"
DATA_ROOT="${LABCI_DOCKER_DATA_ROOT:-/var/lib/labci-docker}"
if ! command -v dockerd >/dev/null 2>&1 || ! command -v busybox >/dev/null 2>&1; then
  echo "docker-engine: installing docker.io and busybox-static (apt-get)…" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io busybox-static >/dev/null
fi
answers() {  # GET /_ping on the socket, with only Python (curl may be missing)
  python3 - "$SOCKET" <<'PY' >/dev/null 2>&1
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
status_line = s.recv(64).split(b"\r\n", 1)[0].split()
sys.exit(0 if status_line[1:2] == [b"200"] else 1)
PY
}
if ! answers; then
  echo "docker-engine: starting dockerd on unix://$SOCKET…" >&2
  mkdir -p "$DATA_ROOT"
  # No iptables and no bridge on these machines: containers use --network none or host.
  nohup dockerd --host "unix://$SOCKET" --data-root "$DATA_ROOT" --iptables=false \
    --bridge=none --pidfile "$DATA_ROOT.pid" >"$DATA_ROOT.log" 2>&1 &
  for _ in $(seq 1 60); do
    answers && break
    sleep 0.5
  done
  answers || { echo "docker-engine: dockerd did not start; see $DATA_ROOT.log" >&2; exit 1; }
fi
echo "docker-engine: unix://$SOCKET answers" >&2
