# syntax=docker/dockerfile:1.7
# The Kopf operator (charts/reelplane-operator runs it):
#   docker build -f docker/operator.Dockerfile -t reelplane/operator:0.1.0 .
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
RUN useradd --uid 10001 --user-group --no-create-home reelplane
ENV PATH=/opt/reelplane/bin:$PATH \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["reelplane"]
CMD ["operator", "run", "--liveness=http://0.0.0.0:8080/healthz"]
