"""Ray Serve applications of the ACGS models.

- :mod:`~acgs_workloads.serving.app`: ``build_app(args)``, one application per ModelDeployment (ingress
  deployment ``ModelServer``: ``POST <prefix>/predict``, ``GET <prefix>/health``, ``GET <prefix>/metadata``);
- :mod:`~acgs_workloads.serving.platform`: ``build_platform(args)``, ``GET /health``, ``/models``, ``/metrics``.

The request pipeline (:mod:`.service`, :mod:`.api`, :mod:`.guard`, :mod:`.asgi`) does not need Ray, so it is
unit-tested with FastAPI's TestClient. Importing this package imports neither Ray nor torch.
Their arguments (``ModelAppArgs``, ``PlatformArgs``) are documents of :mod:`acgs_workloads.contract`.
"""
