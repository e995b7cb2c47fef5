#!/usr/bin/env bash
# Tools for the deploy/ tests (tests/workspace/test_deploy_manifests.py): installs Debian's
# docker-compose (1.29, which validates deploy/docker-compose.yml) when missing, and checks
# that kubectl (whose built-in kustomize renders deploy/kubernetes/) is there. Debian's own
# kubectl (kubernetes-client 1.20) is too old for the overlays, so it is not installed from
# there: these machines carry a current one. Idempotent; needs root (CI machines run as root).
set -euo pipefail
if ! command -v docker-compose >/dev/null 2>&1; then
  echo "deploy-tools: installing docker-compose (apt-get)…" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi
command -v kubectl >/dev/null 2>&1 || {
  echo "deploy-tools: kubectl is missing (kustomize v5 or newer is needed)" >&2
  exit 1
}
echo "deploy-tools: $(docker-compose version --short), kubectl $(kubectl version --client 2>/dev/null | sed -n 's/^Client Version: //p')" >&2
