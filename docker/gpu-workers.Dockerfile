# syntax=docker/dockerfile:1.7
# Transcode workers (`reelplane worker transcode`) with an NVENC/NVDEC-capable ffmpeg:
#   docker build -f docker/gpu-workers.Dockerfile -t reelplane/gpu-workers:0.1.0 .
# Debian's ffmpeg is built with nv-codec-headers (h264_nvenc, hevc_nvenc, cuvid);
# the driver's libnvidia-encode and libcuda are mounted at run time by the NVIDIA
# container toolkit, as NVIDIA_DRIVER_CAPABILITIES below asks. Without a GPU the
# same image encodes with libx264/libx265 (TranscodePool without `gpu`).
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
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/* \
 && ffmpeg -hide_banner -encoders | grep -q h264_nvenc \
 && ffmpeg -hide_banner -encoders | grep -q hevc_nvenc \
 && ffmpeg -hide_banner -encoders | grep -q libx264
COPY --from=build /opt/reelplane /opt/reelplane
RUN useradd --uid 10001 --user-group --no-create-home reelplane
ENV PATH=/opt/reelplane/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    REELPLANE_LOG_FORMAT=json \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,video,utility
USER 10001:10001
WORKDIR /var/lib/reelplane
ENTRYPOINT ["reelplane"]
CMD ["worker", "transcode"]
