# Gotong: `docker compose up` (compose.yaml) runs it with PostgreSQL; see README, "Deploying".
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A user of its own: the bot never runs as root.
RUN groupadd --system gotong && useradd --system --gid gotong --home-dir /app gotong

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gotong ./gotong
RUN pip install . && rm -rf /root/.cache

COPY deploy/entrypoint.sh /usr/local/bin/gotong-entrypoint
RUN chmod 0755 /usr/local/bin/gotong-entrypoint

USER gotong
# Configuration comes from GOTONG_<SECTION>__<KEY> environment variables (the env file).
ENV GOTONG_WEB__HOST=0.0.0.0 \
    GOTONG_WEB__PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"

ENTRYPOINT ["gotong-entrypoint"]
CMD ["run"]
