# One image for the three Dagster processes. Pick one with the command:
#   code server: dagster code-server start -h 0.0.0.0 -p 4000 -m pipeline.definitions
#   webserver:   dagster-webserver -h 0.0.0.0 -p 3000 -w /opt/dagster/workspace.yaml
#   daemon:      dagster-daemon run -w /opt/dagster/workspace.yaml
#   Celery worker (scale-out, README): signals worker --name w1   (SIGNALS_CELERY_BROKER)
# Set SIGNALS_DATABASE_URL (the system of record) and DAGSTER_PG_* (Dagster's storage, see
# dagster.yaml) so every container shares the same PostgreSQL.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DAGSTER_HOME=/opt/dagster/home SIGNALS_HOME=/opt/dagster/signals

RUN groupadd --system signals && useradd --system --gid signals --home /opt/dagster signals
WORKDIR /opt/dagster/app

# The CPU wheel of torch, pinned like pyproject.toml; dependencies before code for caching.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY pipeline pipeline
COPY assets assets
COPY resources resources
RUN pip install .

COPY dagster.yaml /opt/dagster/home/dagster.yaml
RUN printf 'load_from:\n  - grpc_server:\n      host: code-server\n      port: 4000\n      location_name: futures_signals\n' \
        > /opt/dagster/workspace.yaml \
    && mkdir -p /opt/dagster/signals && chown -R signals:signals /opt/dagster

USER signals
EXPOSE 3000 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "pipeline.definitions"]
