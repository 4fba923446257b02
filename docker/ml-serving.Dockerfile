# syntax=docker/dockerfile:1.7
# The recommender on Ray Serve; KubeRay (RayService) or the operator's plain Ray
# Deployments start Ray in it and deploy reelplane_ml.serve:app.
#   docker build -f docker/ml-serving.Dockerfile -t reelplane/ml-serving:0.1.0 .
#   docker build -f docker/ml-serving.Dockerfile --build-arg RAY_TAG=2.60.0-py311 ...  # CPU
# The Ray version must match the Recommender's spec.rayVersion and the `serve`
# extra in uv.lock (ray 2.60.0).
ARG RAY_TAG=2.60.0-py311-gpu
FROM rayproject/ray:${RAY_TAG}
WORKDIR /home/ray/app
# ffmpeg decodes each new video's poster for its image features
# (reelplane_ml.catalogue.compute_features): Ray's image has none, and without
# it the `videos` consumer here stores caption-only features (it logs so once),
# and the content tower never sees a poster. Ubuntu's package, as the
# transcode image takes Debian's.
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/* \
 && ffmpeg -hide_banner -decoders | grep -q mjpeg
USER ray
# Installed from uv.lock, frozen and hash-checked, into Ray's own Python: the
# image gets exactly the reviewed versions (ray itself is already the locked one).
RUN pip install --no-cache-dir uv==0.13.9
COPY --chown=ray:users pyproject.toml uv.lock README.md ./
RUN uv export --frozen --extra serve --no-emit-project -o requirements.txt \
    && pip install --no-cache-dir --require-hashes -r requirements.txt \
    && rm requirements.txt
COPY --chown=ray:users services services
COPY --chown=ray:users operator operator
COPY --chown=ray:users gpu-workers gpu-workers
COPY --chown=ray:users ml-serving ml-serving
# The source roots (as the editable install puts them on sys.path): Ray workers
# import reelplane_ml and the reelplane ports it uses from here.
ENV PYTHONPATH=/home/ray/app/services:/home/ray/app/operator:/home/ray/app/gpu-workers:/home/ray/app/ml-serving \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1 \
    RAY_SERVE_ENABLE_HA_PROXY=1 \
    RAY_SERVE_THROUGHPUT_OPTIMIZED=1 \
    RAY_SERVE_HAPROXY_METRICS_ENABLED=0
