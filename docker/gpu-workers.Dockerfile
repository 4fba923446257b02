# syntax=docker/dockerfile:1.7
# Transcode workers (`reelplane worker transcode`) with an NVENC/NVDEC-capable ffmpeg:
#   docker build -f docker/gpu-workers.Dockerfile -t reelplane/gpu-workers:0.1.0 .
# Debian's ffmpeg is built with nv-codec-headers (h264_nvenc, hevc_nvenc, cuvid);
# the driver's libnvidia-encode and libcuda are mounted at run time by the NVIDIA
# container toolkit, as NVIDIA_DRIVER_CAPABILITIES below asks. Without a GPU the
# same image encodes with libx264/libx265 (TranscodePool without `gpu`).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services services
COPY operator operator
COPY gpu-workers gpu-workers
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/* \
 && ffmpeg -hide_banner -encoders | grep -q h264_nvenc \
 && ffmpeg -hide_banner -encoders | grep -q hevc_nvenc \
 && ffmpeg -hide_banner -encoders | grep -q libx264
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir /wheels/*.whl \
 && useradd --uid 10001 --user-group --no-create-home reelplane
ENV PYTHONUNBUFFERED=1 \
    REELPLANE_LOG_FORMAT=json \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,video,utility
USER 10001:10001
WORKDIR /var/lib/reelplane
ENTRYPOINT ["reelplane"]
CMD ["worker", "transcode"]
