# One image for the Dagster processes and the main job, installed from uv.lock: the same
# versions (and, torch aside, the same files by hash) that the tests pass on. Built offline by
# `scripts/image.py` (README, Container image): the base is Debian bookworm made locally
# (mmdebstrap + podman import; bookworm's python3 is 3.11, as the lock resolves), and
# `scripts/image.py wheels` puts the lock's wheels in build/image/wheels beforehand, and the
# project's own in build/image/project.
# Pick a process with the command (compose.yaml starts the three against PostgreSQL):
#   code server: dagster code-server start -h 0.0.0.0 -p 4000 -m pipeline.definitions
#   webserver:   dagster-webserver -h 0.0.0.0 -p 3000 -w /opt/dagster/workspace.yaml
#   daemon:      dagster-daemon run -w /opt/dagster/workspace.yaml
#   main job:    signals run          Celery worker (Scale-out): signals worker --name w1
# Set SIGNALS_DATABASE_URL (the system of record) and DAGSTER_PG_URL (Dagster's storage, see
# dagster.yaml) so every container shares the same PostgreSQL, and mount one volume at
# SIGNALS_HOME in each (the Parquet store, models and reports).
ARG BASE=localhost/futures-signals-base:bookworm

FROM ${BASE} AS install
COPY build/image/wheels /wheels
# --no-index: nothing comes from the network. Every requirement is pinned and hashed but torch
# (its lock entry is a local wheel without a hash), so torch goes first by its exact version.
# Bytecode is compiled once here, hash-checked without reading sources' mtimes: every Dagster
# run is a new process, and the venv is read-only to the user that runs it.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --quiet --no-cache-dir --no-index --find-links /wheels \
        --no-deps --no-compile "torch==2.13.0+cpu" \
    && /opt/venv/bin/pip install --quiet --no-cache-dir --no-index --find-links /wheels \
        --no-deps --no-compile --require-hashes -r /wheels/requirements.txt
# One file fails to compile, and nothing imports it: a test helper of torch's in Python 3.12's
# syntax (pip's own compile step skips such files silently).
RUN /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
        -x 'torch/testing/_internal/py312_intrinsics\.py$' /opt/venv/lib

FROM ${BASE}
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DAGSTER_HOME=/opt/dagster/home SIGNALS_HOME=/opt/dagster/signals
RUN useradd --system --user-group --home-dir /opt/dagster --no-create-home signals
COPY --from=install /opt/venv /opt/venv
# The project last, on its own: a change to the code rebuilds only these layers (seconds).
COPY build/image/project /opt/dagster/dist
RUN /opt/venv/bin/pip install --quiet --no-cache-dir --no-index --no-deps --no-compile \
        /opt/dagster/dist/futures_signals-*.whl \
    && /opt/venv/bin/pip check \
    && cd /opt/venv/lib/python3.11/site-packages \
    && /opt/venv/bin/python -m compileall -q --invalidation-mode unchecked-hash \
        pipeline assets resources
COPY dagster.yaml /opt/dagster/home/dagster.yaml
RUN printf 'load_from:\n  - grpc_server:\n      host: code-server\n      port: 4000\n      location_name: futures_signals\n' \
        > /opt/dagster/workspace.yaml \
    && mkdir -p /opt/dagster/signals && chown -R signals:signals /opt/dagster

USER signals
WORKDIR /opt/dagster
EXPOSE 3000 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "pipeline.definitions"]
