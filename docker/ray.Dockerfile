# The Ray image for KubeRay head and worker pods: Ray plus acgs_workloads (training entry point,
# Serve deployments), so jobs and Serve applications the operator submits import it directly.
#   docker build -f docker/ray.Dockerfile -t ghcr.io/acgs/acgs-ray:0.1.0 .
#   docker build -f docker/ray.Dockerfile --build-arg VARIANT=gpu -t ghcr.io/acgs/acgs-ray:0.1.0-gpu .
# Build context: the repository root. VARIANT=gpu starts from Ray's CUDA image. torch comes from the
# package index pip is configured with (PyPI or your mirror); TORCH_INDEX_URL adds another index, e.g.
# --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu for the smaller CPU-only wheels.
# BASE replaces the base image altogether (any image with Python 3.11 and pip, e.g. one built locally).

ARG RAY_VERSION=2.60.0
ARG PYTHON_TAG=py311
ARG VARIANT=cpu
ARG BASE=rayproject/ray:${RAY_VERSION}-${PYTHON_TAG}-${VARIANT}
FROM ${BASE}

ARG RAY_VERSION
ARG TORCH_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1
WORKDIR /home/ray/acgs
COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 operator ./operator
COPY --chown=1000:100 workloads ./workloads
# Keep the image's Ray version.
RUN pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} ".[workloads]" "ray[default,serve,train]==${RAY_VERSION}" \
    && python -c "import acgs_workloads, torch, ray; print('acgs_workloads on ray', ray.__version__, 'torch', torch.__version__)"
WORKDIR /home/ray
USER 1000
