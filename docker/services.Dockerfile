# syntax=docker/dockerfile:1.7
# Reelplane's HTTP services; one image, the chart picks the service:
#   docker build -f docker/services.Dockerfile -t reelplane/services:0.1.0 .
#   docker run reelplane/services:0.1.0 serve gateway
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

FROM python:3.11-slim-bookworm
COPY --from=build /opt/reelplane /opt/reelplane
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /var/lib/reelplane reelplane
ENV PATH=/opt/reelplane/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    REELPLANE_LOG_FORMAT=json \
    REELPLANE_HTTP_HOST=0.0.0.0 \
    REELPLANE_DATA_DIR=/var/lib/reelplane
USER 10001:10001
WORKDIR /var/lib/reelplane
EXPOSE 8080
ENTRYPOINT ["reelplane"]
CMD ["serve", "gateway"]
