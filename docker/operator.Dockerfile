# The ACGS operator image: `acgs operator run` (kopf), non-root, no torch and no Ray.
#   docker build -f docker/operator.Dockerfile -t ghcr.io/acgs/acgs-operator:0.1.0 .
# Build context: the repository root. BASE: any image with Python 3.11, pip, groupadd and useradd, e.g.
# the Debian image `acgs dev cluster` builds locally (--build-arg BASE=acgs.local/python:3.11-bookworm).

ARG BASE=python:3.11-slim
FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Wheels of the dependencies ([project].dependencies and the [operator] extra) from pyproject.toml alone,
# then the project's own wheel: a code change rebuilds only the latter.
COPY pyproject.toml ./
RUN mkdir -p /wheels/deps \
    && python -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + [r for e in sys.argv[1:] for r in p['optional-dependencies'][e]]))" operator > /wheels/deps/requirements.txt \
    && pip wheel --wheel-dir /wheels/deps -r /wheels/deps/requirements.txt
COPY README.md ./
COPY operator ./operator
COPY workloads ./workloads
RUN pip wheel --no-deps --wheel-dir /wheels/app ".[operator]"

FROM ${BASE}
ENV HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN groupadd --gid 1000 acgs && useradd --uid 1000 --gid 1000 --no-create-home --shell /usr/sbin/nologin acgs
# regopy (the Rego engine) links libatomic.so.1, which slim Debian images lack
RUN ldconfig -p | grep -q libatomic.so.1 || (apt-get update -q && apt-get install -y -q --no-install-recommends \
        libatomic1 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin)
# Installed without an index or a compiler: the dependencies (cached while pyproject.toml is unchanged),
# then the project.
COPY --from=build /wheels/deps /wheels/deps
RUN pip install --no-index --find-links /wheels/deps -r /wheels/deps/requirements.txt && rm -rf /wheels
COPY --from=build /wheels/app /wheels/app
RUN pip install --no-index --no-deps /wheels/app/*.whl && rm -rf /wheels \
    && python -c "import acgs_operator.cli, acgs_operator.runner, acgs_operator.handlers, regopy"
USER 1000:1000
WORKDIR /tmp
# metrics (ACGS_METRICS_PORT), liveness /healthz (ACGS_HEALTH_PORT)
EXPOSE 9090 8080
# The chart sets command [acgs] and args [operator, run, ...]; `docker run IMAGE` alone runs the operator too.
ENTRYPOINT ["acgs"]
CMD ["operator", "run"]
