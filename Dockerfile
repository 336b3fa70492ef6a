# One image for every role, chosen by the command (see compose.yaml):
#   web        (default)  daphne ctiboard.asgi:application
#   worker                python manage.py ingest
#   simulator             python manage.py simulate --host 0.0.0.0 --port 8001 ...
#   migrations            python manage.py migrate --noinput
#   demo                  python manage.py demo --host 0.0.0.0   (SQLite, all in one process)
# The simulator and the demo need CTIBOARD_ALLOW_SIMULATOR=1 (compose.yaml sets it).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ctiboard ./ctiboard
RUN python -m venv /venv && /venv/bin/pip install .

FROM python:3.11-slim
ENV PATH=/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=ctiboard.settings \
    CTIBOARD_DATA_DIR=/data \
    STATIC_ROOT=/app/staticfiles \
    CTIBOARD_STATIC_MANIFEST=1 \
    WHITENOISE_USE_FINDERS=0 \
    HEALTHCHECK_URL=http://127.0.0.1:8000/healthz
RUN useradd --system --uid 10001 --home-dir /app ctiboard \
    && mkdir -p /app /data && chown ctiboard /data
WORKDIR /app
COPY --from=build /venv /venv
# The source tree (PYTHONPATH=/app) comes first: templates and static files are found beside it.
COPY manage.py ./
COPY ctiboard ./ctiboard
COPY templates ./templates
COPY static ./static
# Hashed, compressed static files at build time; collectstatic needs some key, the running
# container gets its own SECRET_KEY. WhiteNoise serves them from the web process.
RUN SECRET_KEY=collectstatic-only CTIBOARD_DATA_DIR=/tmp python manage.py collectstatic --noinput --verbosity 0
USER ctiboard
EXPOSE 8000
# Per role through HEALTHCHECK_URL: web /healthz, worker its metrics port, simulator /_sim/.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "ctiboard.ops.probe"]
# Daphne closes board sockets with 1012 on SIGTERM; browsers reconnect to another process.
# The message size cap applies to what Daphne sends too (ctiboard.lib.serve explains it).
STOPSIGNAL SIGTERM
CMD ["daphne", "--bind", "0.0.0.0", "--port", "8000", "--proxy-headers", "--websocket-max-message-size", "16777216", "ctiboard.asgi:application"]
