# labci runner image. Build from the repository root:
#   docker build -f deploy/docker/runner.Dockerfile -t labci/runner .
# GPU variant (CUDA base; GPUs reach containers through the NVIDIA container toolkit):
#   docker build -f deploy/docker/runner.Dockerfile \
#     --build-arg BASE=nvidia/cuda:12.4.1-runtime-ubuntu22.04 -t labci/runner:gpu .
# BASE needs python3 (>= 3.11), its venv module and git; apt bases get git installed here.
ARG BASE=python:3.11-slim

FROM ${BASE} AS builder
COPY action-spec /src/action-spec
COPY runner /src/runner
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/build/bin/pip wheel --no-cache-dir --wheel-dir /wheels /src/action-spec /src/runner

FROM ${BASE}
COPY --from=builder /wheels /wheels
RUN if ! command -v git >/dev/null && command -v apt-get >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends git \
      && rm -rf /var/lib/apt/lists/*; fi \
 && python3 -m venv /opt/labci-runner \
 && /opt/labci-runner/bin/pip install --no-cache-dir --no-index --find-links /wheels labci-runner \
 && rm -rf /wheels \
 && useradd --system --uid 10002 --home-dir /var/lib/labci-runner --create-home labci-runner
ENV PATH=/opt/labci-runner/bin:$PATH \
    LABCI_RUNNER_WORKDIR=/var/lib/labci-runner
USER labci-runner
WORKDIR /var/lib/labci-runner
# The agent is PID 1: alive while its process answers signal 0.
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD ["python3", "-c", "import os; os.kill(1, 0)"]
ENTRYPOINT ["labci-runner"]
CMD ["start"]
