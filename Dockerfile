# Sahay's web service. See docs/deployment.md; compose.yaml runs it with PostgreSQL, Qdrant and Orthanc.
# Not built in CI: the CI machines have no Docker engine.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Pango and a font for WeasyPrint's PDF reports (the same packages as scripts/setup-system).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY sahay ./sahay
# torch is pinned exactly in pyproject.toml. From PyPI that is the CUDA build (gigabytes); on a
# CPU-only server add the CPU wheel index to this line:
#   --extra-index-url https://download.pytorch.org/whl/cpu
RUN pip install ".[server,postgres]"

# Never run as root. SAHAY_HOME (models, blobs, the SQLite database when no PostgreSQL is given,
# the generated token key when SAHAY_SECRET_KEY is unset) lives on the /data volume.
RUN useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin sahay \
    && mkdir -p /data \
    && chown sahay:sahay /data
ENV SAHAY_HOME=/data
VOLUME /data
USER sahay
WORKDIR /data

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["sahay", "serve", "--host", "0.0.0.0", "--port", "8000"]
