# syntax=docker/dockerfile:1.7
# The recommender on Ray Serve; KubeRay (RayService) or the operator's plain Ray
# Deployments start Ray in it and deploy reelplane_ml.serve:app.
#   docker build -f docker/ml-serving.Dockerfile -t reelplane/ml-serving:0.1.0 .
#   docker build -f docker/ml-serving.Dockerfile --build-arg RAY_TAG=2.40.0-py311 ...  # CPU
# The Ray version must match the Recommender's spec.rayVersion.
ARG RAY_TAG=2.40.0-py311-gpu
FROM rayproject/ray:${RAY_TAG}
WORKDIR /home/ray/app
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users services services
COPY --chown=ray:users operator operator
COPY --chown=ray:users gpu-workers gpu-workers
COPY --chown=ray:users ml-serving ml-serving
RUN pip install --no-cache-dir .
# ml-serving/ is a source root (reelplane_ml); Ray workers import from it.
ENV PYTHONPATH=/home/ray/app/ml-serving \
    PYTHONUNBUFFERED=1
