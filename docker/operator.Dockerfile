# syntax=docker/dockerfile:1.7
# The Kopf operator (charts/reelplane-operator runs it):
#   docker build -f docker/operator.Dockerfile -t reelplane/operator:0.1.0 .
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
 && useradd --uid 10001 --user-group --no-create-home reelplane
ENV PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["reelplane"]
CMD ["operator", "run", "--liveness=http://0.0.0.0:8080/healthz"]
