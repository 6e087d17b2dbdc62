# mtsent HTTP service on CPU. Build:  docker build -t mtsent .
# Run:    docker run -p 8000:8000 --cpus 4 -v /path/to/model:/model:ro mtsent
# Not built in the development environment (it has the docker client but no engine, and no registry to pull the
# base image from); see docs/serving.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1

WORKDIR /app

# The CPU wheel of PyTorch first (a few hundred MB instead of several GB of CUDA libraries), in its own layer.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# Only the serving extra: no web app (streamlit), no training (accelerate, datasets, matplotlib).
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[serve]" && useradd --create-home --uid 10001 mtsent

# Model files are written 0644 by mtsent, so the service user can read a mounted model directory.
USER mtsent
VOLUME ["/model"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"

# 0.0.0.0 inside the container only; publish the port deliberately with -p, and set API keys (MTSENT_API_KEYS or
# --api-key-file) when it is reachable by others. Torch threads follow the container's CPU quota (--cpus).
# SIGTERM (docker stop) drains requests in flight for up to --shutdown-timeout seconds; keep docker's own stop
# timeout above it (docker stop -t 40).
CMD ["mtsent", "serve", "--model", "/model", "--host", "0.0.0.0", "--port", "8000"]
