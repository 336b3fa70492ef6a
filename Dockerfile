# One image for every role: web (default), worker (`ingest`), simulator (`simulate`), demo.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ctiboard ./ctiboard
RUN python -m venv /venv && /venv/bin/pip install .

FROM python:3.11-slim
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=ctiboard.settings \
    CTIBOARD_DATA_DIR=/data \
    STATIC_ROOT=/app/staticfiles \
    CTIBOARD_STATIC_MANIFEST=1 \
    WHITENOISE_USE_FINDERS=0
RUN useradd --system --uid 10001 --home-dir /app ctiboard \
    && mkdir -p /app /data && chown ctiboard /data
WORKDIR /app
COPY --from=build /venv /venv
COPY manage.py ./
COPY ctiboard ./ctiboard
COPY templates ./templates
COPY static ./static
# collectstatic needs some key; the running container gets its own SECRET_KEY.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0
USER ctiboard
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)" || exit 1
CMD ["daphne", "--bind", "0.0.0.0", "--port", "8000", "--proxy-headers", "ctiboard.asgi:application"]
