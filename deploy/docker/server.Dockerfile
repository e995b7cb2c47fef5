# labci server image: `labci serve`, `labci worker` and `labci db upgrade` (one image).
# Build from the repository root (the build downloads from PyPI):
#   docker build -f deploy/docker/server.Dockerfile -t labci/server:local .
# BASE is any Debian-like image with python3 (>= 3.11) and its venv module (Debian 12's
# python3 + python3-venv, or python:3.11-slim). scripts/build-images.sh builds one with
# debootstrap where no registry is reachable.
#
# What gets installed is what a user of the wheels gets: labci-spec and labci-server built
# as wheels from this workspace, and their dependencies at the versions locked in uv.lock
# (hash-checked). Layers are ordered so that a change to labci's sources rebuilds only the
# last, small ones: the dependencies' layer changes only with the dependencies themselves.
# Written for the classic builder too (Debian 12's docker-compose 1.29): no RUN --mount.
ARG BASE=python:3.11-slim

# The tools that build the image: uv (export, install, build) and hatchling (the backend).
FROM ${BASE} AS tools
ARG UV_VERSION=0.13.9
ENV UV_PYTHON_DOWNLOADS=never UV_NO_CACHE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir "uv==${UV_VERSION}" hatchling

# labci-server's dependencies as uv.lock pins them (versions and hashes).
FROM tools AS lock
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY action-spec/pyproject.toml action-spec/
COPY server/pyproject.toml server/
COPY runner/pyproject.toml runner/
RUN /opt/build/bin/uv export --frozen --package labci-server --no-emit-workspace --no-dev \
      --output-file /requirements.txt >/dev/null

# Those dependencies in the venv the image runs (/opt/labci). The layer is keyed on the
# exported list, not on uv.lock: a lock change elsewhere in the workspace keeps it.
FROM tools AS deps
COPY --from=lock /requirements.txt /opt/requirements.txt
RUN python3 -m venv /opt/labci \
 && /opt/build/bin/uv pip install --python /opt/labci/bin/python --require-hashes \
      --compile-bytecode -r /opt/requirements.txt

# labci's own wheels, built from the workspace's sources.
FROM deps AS wheels
WORKDIR /src
COPY pyproject.toml ./
COPY action-spec/pyproject.toml action-spec/
COPY server/pyproject.toml server/
COPY runner/pyproject.toml runner/
COPY action-spec/src action-spec/src
COPY server/src server/src
RUN /opt/build/bin/uv build --wheel --no-build-isolation --python /opt/build/bin/python \
      --package labci-spec --out-dir /wheels \
 && /opt/build/bin/uv build --wheel --no-build-isolation --python /opt/build/bin/python \
      --package labci-server --out-dir /wheels

FROM ${BASE}
RUN useradd --system --uid 10001 --home-dir /var/lib/labci --create-home labci \
 && mkdir -p /var/lib/labci/artifacts && chown labci /var/lib/labci/artifacts
COPY --from=deps /opt/labci /opt/labci
COPY --from=wheels /wheels /tmp/wheels
RUN /opt/labci/bin/pip install --no-cache-dir --no-deps --no-index --disable-pip-version-check \
      /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels
ENV PATH=/opt/labci/bin:$PATH \
    LABCI_HOST=0.0.0.0 \
    LABCI_ARTIFACTS_DIR=/var/lib/labci/artifacts
USER labci
WORKDIR /var/lib/labci
EXPOSE 8000
# /healthz for `serve`; the worker's container overrides it (see docker-compose.yml).
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LABCI_PORT', '8000'), timeout=4)"]
LABEL org.labci.image=server
ENTRYPOINT ["labci"]
CMD ["serve", "--no-migrate"]
