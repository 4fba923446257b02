# syntax=docker/dockerfile:1.7
# Reelplane's HTTP services; one image, the chart picks the service:
#   docker build -f docker/services.Dockerfile -t reelplane/services:0.1.0 .
#   docker run reelplane/services:0.1.0 serve gateway
# Node only builds the browser client (its packages pinned by web/package-lock.json).
FROM node:22.12.0-bookworm-slim AS node

FROM python:3.11-slim-bookworm AS build
# Installed from uv.lock, frozen: the image gets exactly the reviewed versions.
RUN pip install --no-cache-dir uv==0.13.9
ENV UV_PROJECT_ENVIRONMENT=/opt/reelplane UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-install-project --no-cache
COPY services services
COPY operator operator
COPY gpu-workers gpu-workers
RUN uv sync --frozen --no-editable --no-cache
# The web client the gateway serves at /: `npm ci` of the lock, then the
# content-hashed folder, assembled by the same code as `reelplane dev`.
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
COPY web web
RUN REELPLANE_WEB_STATIC_DIR=/opt/reelplane-web /opt/reelplane/bin/reelplane web build \
        --source=web --npm-cache=/tmp/npm \
    && rm -rf /tmp/npm

FROM python:3.11-slim-bookworm
# ffprobe validates every upload (the upload service, reelplane.media.ffprobe);
# without it that service restarts on REELPLANE_FFMPEG_PATH's error, since an
# image has no harness to install it at run time. Debian's package.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/* \
 && ffprobe -hide_banner -version >/dev/null
COPY --from=build /opt/reelplane /opt/reelplane
COPY --from=build /opt/reelplane-web /opt/reelplane-web
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /var/lib/reelplane reelplane
ENV PATH=/opt/reelplane/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    REELPLANE_LOG_FORMAT=json \
    REELPLANE_HTTP_HOST=0.0.0.0 \
    REELPLANE_DATA_DIR=/var/lib/reelplane \
    REELPLANE_WEB_STATIC_DIR=/opt/reelplane-web
USER 10001:10001
WORKDIR /var/lib/reelplane
EXPOSE 8080
ENTRYPOINT ["reelplane"]
CMD ["serve", "gateway"]
