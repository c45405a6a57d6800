# The ACGS operator image: `acgs operator run` (kopf), non-root, no torch and no Ray.
#   docker build -f docker/operator.Dockerfile -t ghcr.io/acgs/acgs-operator:0.1.0 .
# Build context: the repository root.

ARG BASE=python:3.11-slim
FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY workloads ./workloads
# Wheels for the project and its [operator] extra, installed in the final stage without a compiler
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[operator]"

FROM ${BASE}
ENV HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1
RUN groupadd --gid 1000 acgs && useradd --uid 1000 --gid 1000 --no-create-home --shell /usr/sbin/nologin acgs
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels "acgs[operator]" && rm -rf /wheels
USER 1000:1000
WORKDIR /tmp
# metrics (ACGS_METRICS_PORT), liveness /healthz (ACGS_HEALTH_PORT)
EXPOSE 9090 8080
# The chart sets command [acgs] and args [operator, run, ...]; `docker run IMAGE` alone runs the operator too.
ENTRYPOINT ["acgs"]
CMD ["operator", "run"]
