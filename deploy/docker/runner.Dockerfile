# labci runner image. Build from the repository root (the build downloads from PyPI):
#   docker build -f deploy/docker/runner.Dockerfile -t labci/runner:local .
# GPU variant (a CUDA base; GPUs reach containers through the NVIDIA container toolkit):
#   docker build -f deploy/docker/runner.Dockerfile \
#     --build-arg BASE=nvidia/cuda:12.6.3-runtime-ubuntu24.04 -t labci/runner:gpu .
# BASE needs git and a python3 (>= 3.11) with its venv module. Apt-based images get what
# they lack from their own archive: git, python3 and python3-venv (Ubuntu 24.04: 3.12),
# and python3.11 where python3 is older (Ubuntu 22.04's CUDA images: its python3 is 3.10
# and its python3.11 a 3.11.0 release candidate, so prefer the 24.04 ones).
#
# Like server.Dockerfile: labci's wheels built from this workspace, their dependencies at
# the versions locked in uv.lock, layers ordered so that a source change rebuilds the last
# ones only, and no RUN --mount (Debian 12's docker-compose 1.29 uses the classic builder).
ARG BASE=python:3.11-slim

# git and the (still empty) venv the runner runs from, on a Python >= 3.11: the base's own
# where it has them, else its archive's (python:3.11-slim gets git only).
FROM ${BASE} AS runtime
RUN set -eu; \
    venv() { \
      for python in python3.13 python3.12 python3.11 python3; do \
        command -v "$python" >/dev/null 2>&1 || continue; \
        "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || continue; \
        "$python" -m venv /opt/labci-runner >/dev/null 2>&1 && return 0; \
        rm -rf /opt/labci-runner; \
      done; \
      return 1; \
    }; \
    missing=""; \
    command -v git >/dev/null 2>&1 || missing="git"; \
    venv || missing="$missing python3 python3-venv"; \
    if [ -z "$missing" ]; then exit 0; fi; \
    if ! command -v apt-get >/dev/null 2>&1; then \
      echo "runner.Dockerfile: BASE needs git and python3 >= 3.11 with venv" >&2; exit 1; \
    fi; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update -qq; \
    apt-get install -y -qq --no-install-recommends $missing ca-certificates >/dev/null; \
    [ -d /opt/labci-runner ] || venv || { \
      apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv >/dev/null \
      && venv; }; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/*

# The tools that build the image: uv (export, install, build) and hatchling (the backend).
FROM runtime AS tools
ARG UV_VERSION=0.13.9
ENV UV_PYTHON_DOWNLOADS=never UV_NO_CACHE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN /opt/labci-runner/bin/python -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir "uv==${UV_VERSION}" hatchling

# labci-runner's dependencies as uv.lock pins them (versions and hashes).
FROM tools AS lock
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY action-spec/pyproject.toml action-spec/
COPY server/pyproject.toml server/
COPY runner/pyproject.toml runner/
RUN /opt/build/bin/uv export --frozen --package labci-runner --no-emit-workspace --no-dev \
      --output-file /requirements.txt >/dev/null

# Those dependencies in the runner's venv. The layer is keyed on the exported list, not on
# uv.lock: a lock change elsewhere in the workspace keeps it.
FROM tools AS deps
COPY --from=lock /requirements.txt /opt/requirements.txt
RUN /opt/build/bin/uv pip install --python /opt/labci-runner/bin/python --require-hashes \
      --compile-bytecode -r /opt/requirements.txt

# labci's own wheels, built from the workspace's sources.
FROM deps AS wheels
WORKDIR /src
COPY pyproject.toml ./
COPY action-spec/pyproject.toml action-spec/
COPY server/pyproject.toml server/
COPY runner/pyproject.toml runner/
COPY action-spec/src action-spec/src
COPY runner/src runner/src
RUN /opt/build/bin/uv build --wheel --no-build-isolation --python /opt/build/bin/python \
      --package labci-spec --out-dir /wheels \
 && /opt/build/bin/uv build --wheel --no-build-isolation --python /opt/build/bin/python \
      --package labci-runner --out-dir /wheels

FROM runtime
RUN useradd --system --uid 10002 --home-dir /var/lib/labci-runner --create-home labci-runner
COPY --from=deps /opt/labci-runner /opt/labci-runner
COPY --from=wheels /wheels /tmp/wheels
RUN /opt/labci-runner/bin/pip install --no-cache-dir --no-deps --no-index \
      --disable-pip-version-check /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels
ENV PATH=/opt/labci-runner/bin:$PATH \
    LABCI_RUNNER_WORKDIR=/var/lib/labci-runner
USER labci-runner
WORKDIR /var/lib/labci-runner
# The agent is PID 1: alive while its process answers signal 0.
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD ["python3", "-c", "import os; os.kill(1, 0)"]
LABEL org.labci.image=runner
ENTRYPOINT ["labci-runner"]
CMD ["start"]
