# syntax=docker/dockerfile:1.7
# Reelplane's HTTP services; one image, the chart picks the service:
#   docker build -f docker/services.Dockerfile -t reelplane/services:0.1.0 .
#   docker run reelplane/services:0.1.0 serve gateway
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services services
COPY operator operator
COPY gpu-workers gpu-workers
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir /wheels/*.whl \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /var/lib/reelplane reelplane
ENV PYTHONUNBUFFERED=1 \
    REELPLANE_LOG_FORMAT=json \
    REELPLANE_HTTP_HOST=0.0.0.0 \
    REELPLANE_DATA_DIR=/var/lib/reelplane
USER 10001:10001
WORKDIR /var/lib/reelplane
EXPOSE 8080
ENTRYPOINT ["reelplane"]
CMD ["serve", "gateway"]
