# Validator image. Torch wheels from PyPI bundle CUDA, so a slim Python base works on any host with
# the NVIDIA container toolkit: docker run --gpus all ...
FROM python:3.11.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/data/hf \
    SUBNET_STATE_DIR=/data/state

RUN apt-get update \
    && apt-get install -y --no-install-recommends curl=7.88.* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 validator \
    && mkdir -p /data && chown validator:validator /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY subnet ./subnet
COPY neurons ./neurons
# The gpu extra (Liger's fused cross-entropy; Triton comes with torch's CUDA wheels) installs from wheels.
# flash-attn is left out: it compiles against a CUDA toolkit this slim image does not have; without it the
# engine scores packed rows with SDPA's block-diagonal mask, exactly, a little slower.
RUN pip install --no-cache-dir ".[gpu]"

USER 1000:1000
VOLUME ["/data"]
EXPOSE 8091

HEALTHCHECK --interval=60s --timeout=10s --start-period=300s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:8091/healthz"]

# SIGTERM ends the round after the model in progress: up to the per-model timeout + 30 s (630 s by
# default). Give it that long: `docker run --stop-timeout 660` or Compose `stop_grace_period: 11m`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "neurons/validator.py"]
CMD ["--netuid", "9", "--network", "finney", "--state-dir", "/data/state", "--api-host", "0.0.0.0"]
