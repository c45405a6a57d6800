# The Ray image for KubeRay head and worker pods: Ray plus acgs_workloads (training entry point,
# Serve deployments), so jobs and Serve applications the operator submits import it directly.
#   docker build -f docker/ray.Dockerfile -t ghcr.io/acgs/acgs-ray:0.1.0 .
#   docker build -f docker/ray.Dockerfile --build-arg VARIANT=gpu -t ghcr.io/acgs/acgs-ray:0.1.0-gpu .
# Build context: the repository root. VARIANT=gpu starts from Ray's CUDA image. torch comes from the
# package index pip is configured with (PyPI or your mirror); TORCH_INDEX_URL adds another index, e.g.
# --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu for the smaller CPU-only wheels.
# BASE replaces the base image altogether: any image with Python 3.11, pip and useradd, e.g. the Debian
# image `acgs dev cluster` builds locally (--build-arg BASE=acgs.local/python:3.11-bookworm).
#
# The dependencies are installed from pyproject.toml alone, before the source is copied: a code change
# rebuilds only the last layers, not the one holding torch.

ARG RAY_VERSION=2.60.0
ARG PYTHON_TAG=py311
ARG VARIANT=cpu
ARG BASE=rayproject/ray:${RAY_VERSION}-${PYTHON_TAG}-${VARIANT}
FROM ${BASE}

ARG RAY_VERSION
ARG TORCH_INDEX_URL=""
ENV HOME=/home/ray \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
USER root
# uid 1000 with home /home/ray: Ray's image has it (user ray, group users); another base gets it here.
RUN (id -u 1000 >/dev/null 2>&1 || useradd --uid 1000 --gid 100 --home-dir /home/ray --shell /bin/bash ray) \
    && mkdir -p /home/ray/acgs \
    && chown 1000:100 /home/ray /home/ray/acgs
WORKDIR /home/ray/acgs

# pip runs as the owner of the interpreter's prefix: ray in Ray's image (its conda environment), root in a
# Debian base (/usr/local, on the PATH of login shells, which KubeRay starts with `bash -lc`).
COPY --chown=1000:100 pyproject.toml ./
RUN python -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + [r for e in sys.argv[1:] for r in p['optional-dependencies'][e]]))" workloads > /tmp/requirements.txt \
    && setpriv $(stat -c '--reuid=%u --regid=%g' "$(python -c 'import sys; print(sys.prefix)')") --clear-groups \
        python -m pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} \
        -r /tmp/requirements.txt "ray[default,serve,train]==${RAY_VERSION}" \
    && rm /tmp/requirements.txt
# regopy (the Rego engine: training labels, the gate, the runtime guard) links libatomic.so.1
RUN ldconfig -p | grep -q libatomic.so.1 || (apt-get update -q && apt-get install -y -q --no-install-recommends \
        libatomic1 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin)

# Keep the image's Ray version: the project itself only, its dependencies are above.
COPY --chown=1000:100 README.md ./
COPY --chown=1000:100 operator ./operator
COPY --chown=1000:100 workloads ./workloads
RUN setpriv $(stat -c '--reuid=%u --regid=%g' "$(python -c 'import sys; print(sys.prefix)')") --clear-groups \
        python -m pip install --no-deps . \
    && python -c "import acgs_workloads, torch, ray, regopy; print('acgs_workloads on ray', ray.__version__, 'torch', torch.__version__)"
WORKDIR /home/ray
USER 1000
