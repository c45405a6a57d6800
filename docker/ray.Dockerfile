# The Ray image for KubeRay head and worker pods: Ray plus acgs_workloads (training entry point,
# Serve deployments), so jobs and Serve applications the operator submits import it directly.
#   docker build -f docker/ray.Dockerfile -t ghcr.io/acgs/acgs-ray:0.1.0 .
#   docker build -f docker/ray.Dockerfile --build-arg VARIANT=gpu -t ghcr.io/acgs/acgs-ray:0.1.0-gpu .
# Build context: the repository root. VARIANT=cpu uses CPU-only torch wheels; VARIANT=gpu starts from
# Ray's CUDA image and installs the CUDA torch wheels from PyPI.

ARG RAY_VERSION=2.60.0
ARG PYTHON_TAG=py311
ARG VARIANT=cpu
FROM rayproject/ray:${RAY_VERSION}-${PYTHON_TAG}-${VARIANT}

ARG RAY_VERSION
ARG VARIANT
ENV PIP_NO_CACHE_DIR=1
WORKDIR /home/ray/acgs
COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 operator ./operator
COPY --chown=1000:100 workloads ./workloads
# Keep the image's Ray version; CPU-only torch unless VARIANT=gpu.
RUN if [ "$VARIANT" = "cpu" ]; then \
        pip install --extra-index-url https://download.pytorch.org/whl/cpu ".[workloads]" "ray[default,serve,train]==${RAY_VERSION}"; \
    else \
        pip install ".[workloads]" "ray[default,serve,train]==${RAY_VERSION}"; \
    fi \
    && python -c "import acgs_workloads, torch, ray; print('acgs_workloads on ray', ray.__version__, 'torch', torch.__version__)"
WORKDIR /home/ray
USER 1000
