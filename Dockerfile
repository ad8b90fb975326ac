# One image, every role: web (`votes serve`), worker, cron, and the one-off migration.
# No PROMETHEUS_MULTIPROC_DIR here: `votes serve` sets it for gunicorn (multiprocess
# metrics); every other process counts in its own memory.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml requirements.lock README.md gunicorn.conf.py ./
COPY service ./service
COPY workers ./workers
COPY schemas ./schemas
COPY migrations ./migrations
# Editable install: the venv points at /app, where the runtime stage puts the same tree
# (migrations and gunicorn.conf.py are found next to the package). No extras: the
# embedded Redis and honcho (`local`) are for development only. Every dependency comes
# from the runtime lock (exact versions, hashes checked); the project itself goes on top.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install -r requirements.lock \
    && /opt/venv/bin/pip install --no-deps -e .

FROM python:3.11-slim
RUN groupadd --system --gid 10001 votes \
    && useradd --system --uid 10001 --gid votes --home-dir /app --shell /usr/sbin/nologin votes
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=votes:votes /app /app
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VOTES_ENV=production \
    VOTES_INSTANCE=/app/instance \
    HOST=0.0.0.0 \
    PORT=8000
RUN mkdir -p /app/instance && chown votes:votes /app/instance
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["votes", "serve"]
