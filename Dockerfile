# sandbox-bot's container image (README: "Container image").
#
#   podman build --format docker -t sandbox-bot .     # or: docker build -t sandbox-bot .
#
# `--format docker` keeps HEALTHCHECK: the OCI image format has no place for it. The base is overridable
# (`--build-arg BASE_IMAGE=...`) and must have python3 (3.11+) with the venv module: the default, or Debian
# bookworm with python3-venv (ci/image-smoke makes one with mmdebstrap). No secret and no .env goes into the
# image (.dockerignore); configuration comes from the environment at run time.
ARG BASE_IMAGE=python:3.11-slim

# ---- build: the project and its dependencies into a virtual environment, exactly as the Makefile installs them
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# A venv works on both bases: Debian's own python3 refuses installs into the system (PEP 668).
RUN python3 -m venv /opt/venv
# The lock file first: this layer (pip and setuptools at their pinned versions) survives changes of the code.
COPY constraints.txt ./
RUN /opt/venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt pip setuptools
COPY pyproject.toml README.md ./
COPY bot ./bot
# Not the dev extras: only what the bot runs on, every version pinned by constraints.txt.
RUN /opt/venv/bin/python -m pip install --quiet --disable-pip-version-check --no-build-isolation \
        -c constraints.txt . \
    && /opt/venv/bin/sandbox-bot --help >/dev/null

# ---- the image: the venv, a user that is not root, nothing else
FROM ${BASE_IMAGE}
RUN groupadd --system --gid 10001 sandbox-bot \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin sandbox-bot \
    && mkdir -p /app && chown 10001:10001 /app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=3000 \
    HOST=0.0.0.0
# Numeric, so that a runtime can tell it is not root (Kubernetes' runAsNonRoot) without reading /etc/passwd.
USER 10001:10001
EXPOSE 3000
# GET /healthz on PORT (slim images have no curl): 200 healthy (ok or degraded), anything else unhealthy.
# HOST 0.0.0.0 (every interface) is reached on 127.0.0.1, :: on ::1, any other address as it is.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; h = os.environ.get('HOST', '').strip(); h = {'': '127.0.0.1', '0.0.0.0': '127.0.0.1', '::': '::1'}.get(h, h); h = '[' + h + ']' if ':' in h else h; urllib.request.urlopen('http://' + h + ':' + (os.environ.get('PORT', '').strip() or '3000') + '/healthz', timeout=4)"]
CMD ["sandbox-bot"]
