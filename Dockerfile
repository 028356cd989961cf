# Switchboard in a container: the same two steps as on a fresh Debian machine.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends espeak-ng sox libsox-fmt-all make \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . /app
RUN python -m venv /app/.venv \
    && /app/.venv/bin/pip install --no-cache-dir --upgrade pip \
    && /app/.venv/bin/pip install --no-cache-dir . \
    && /app/.venv/bin/pip install --no-cache-dir --no-deps silero-vad==6.2.3

ENV SWITCHBOARD_DATA_DIR=/data \
    SWITCHBOARD_API_HOST=0.0.0.0 \
    SWITCHBOARD_SIP_HOST=0.0.0.0 \
    OPENBLAS_NUM_THREADS=1 \
    PATH=/app/.venv/bin:$PATH
VOLUME ["/data"]
EXPOSE 8080/tcp 5060/udp 5060/tcp
CMD ["switchboard", "serve"]
