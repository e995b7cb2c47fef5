# labci server image: `labci serve`, `labci worker` and `labci db upgrade` (one image).
# Build from the repository root:
#   docker build -f deploy/docker/server.Dockerfile -t labci/server .
# BASE is any Debian-like image with python3 (>= 3.11) and its venv module.
ARG BASE=python:3.11-slim

FROM ${BASE} AS builder
COPY action-spec /src/action-spec
COPY server /src/server
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/build/bin/pip wheel --no-cache-dir --wheel-dir /wheels /src/action-spec /src/server

FROM ${BASE}
COPY --from=builder /wheels /wheels
RUN python3 -m venv /opt/labci \
 && /opt/labci/bin/pip install --no-cache-dir --no-index --find-links /wheels labci-server \
 && rm -rf /wheels \
 && useradd --system --uid 10001 --home-dir /var/lib/labci --create-home labci \
 && mkdir -p /var/lib/labci/artifacts && chown labci /var/lib/labci/artifacts
ENV PATH=/opt/labci/bin:$PATH \
    LABCI_HOST=0.0.0.0 \
    LABCI_ARTIFACTS_DIR=/var/lib/labci/artifacts
USER labci
WORKDIR /var/lib/labci
EXPOSE 8000
# /healthz for `serve`; the worker's container overrides it (see docker-compose.yml).
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LABCI_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["labci"]
CMD ["serve", "--no-migrate"]
