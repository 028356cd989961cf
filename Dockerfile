# Switchboard in a container: CPU-only torch, the package, flite and espeak-ng for the local voices.
#   docker compose up            (compose.yaml: with a PostgreSQL service; see the README's Docker section)
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends flite espeak-ng sox libsox-fmt-all \
    && rm -rf /var/lib/apt/lists/*

# torch from PyTorch's CPU index first: from the default index pip would pull ~3 GB of CUDA libraries.
# The package's own `torch>=2.4,<3` is then already satisfied and pip keeps this build.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN python -m venv /app/.venv \
    && /app/.venv/bin/pip install --no-cache-dir --upgrade pip \
    && /app/.venv/bin/pip install --no-cache-dir --index-url "$TORCH_INDEX" "torch==${TORCH_VERSION}" \
    && /app/.venv/bin/python -c "import torch, sys; sys.exit(torch.version.cuda is not None)"

WORKDIR /app
COPY pyproject.toml README.md /app/
COPY switchboard /app/switchboard
COPY sipcore /app/sipcore
COPY media /app/media
COPY trunks /app/trunks
COPY api /app/api
COPY agents /app/agents
COPY store /app/store
RUN /app/.venv/bin/pip install --no-cache-dir /app \
    && /app/.venv/bin/pip install --no-cache-dir --no-deps silero-vad==6.2.3 \
    && /app/.venv/bin/python -c "import torch, sys; sys.exit(torch.version.cuda is not None)"

# SWITCHBOARD_PUBLIC_IP: the address callers reach (SDP and Contact). With host networking (compose.yaml)
# the engine sees the machine's interfaces; set it when the machine has several.
ENV SWITCHBOARD_DATA_DIR=/data \
    SWITCHBOARD_API_HOST=0.0.0.0 \
    SWITCHBOARD_SIP_HOST=0.0.0.0 \
    SWITCHBOARD_RTP_PORT_MIN=16000 \
    SWITCHBOARD_RTP_PORT_MAX=16999 \
    SWITCHBOARD_DRAIN_TIMEOUT=60 \
    OPENBLAS_NUM_THREADS=1 \
    HF_HUB_OFFLINE=1 \
    PATH=/app/.venv/bin:$PATH
VOLUME ["/data"]
# API, SIP (UDP and TCP), and the RTP range (must match SWITCHBOARD_RTP_PORT_MIN/_MAX)
EXPOSE 8080/tcp 5060/udp 5060/tcp 16000-16999/udp
# SIGTERM drains: new calls are refused, live calls get SWITCHBOARD_DRAIN_TIMEOUT seconds. Give the
# container longer than that before SIGKILL: `docker stop -t 75`, or stop_grace_period in compose.yaml.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
    CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/v1/health' % os.environ.get('SWITCHBOARD_API_PORT', '8080'), timeout=4)"
CMD ["switchboard", "serve"]
