# syntax=docker/dockerfile:1
# One image for both processes of Фигачечная:
#   web app: figachechnaya serve --host 0.0.0.0 --port 8000   (the default command;
#            its metrics on the operations port FIGA_METRICS_PORT, 9101)
#   worker:  figachechnaya worker                             (metrics and /healthz on 9100)
#   once per release: figachechnaya migrate
#
# Stage 1 installs the locked runtime dependencies and the project (as a wheel,
# not editable) into /opt/venv with the same pinned uv as the Makefile.
# Stage 2 copies only that virtual environment: no uv, no pip cache, no source
# tree, no build tools.

FROM python:3.11.13-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/opt/venv

RUN pip install uv==0.13.8

WORKDIR /src

# Dependencies first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project

# Then the project itself, installed as a wheel (templates are inside it).
COPY README.md ./
COPY app ./app
COPY workers ./workers
COPY templates ./templates
RUN uv sync --locked --no-dev --no-editable


# Same base as the builder, so the copied venv finds the same interpreter.
FROM python:3.11.13-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="figachechnaya" \
      org.opencontainers.image.description="Фигачечная: figalizes Russian words" \
      org.opencontainers.image.licenses="MIT"

# A fixed, high UID/GID so that Kubernetes runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 figa \
 && useradd --system --uid 10001 --gid figa --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin figa \
 && mkdir -p /srv/figachechnaya/var \
 && chown figa:figa /srv/figachechnaya/var

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FIGA_LOG_FORMAT=json

# ./var (SQLite and local images when run alone) is the only writable place.
WORKDIR /srv/figachechnaya
USER 10001:10001

EXPOSE 8000 9101 9100

# Liveness of the web app; compose and Kubernetes give the worker its own check
# on port 9100.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"]

ENTRYPOINT ["figachechnaya"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
