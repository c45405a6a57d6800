"""Ray Serve applications of the ACGS models.

- :mod:`~acgs_workloads.serving.app`: ``build_app(args)``, one application per ModelDeployment (ingress
  deployment ``ModelServer``: ``POST <prefix>/predict``, ``GET <prefix>/health``, ``GET <prefix>/metadata``);
- :mod:`~acgs_workloads.serving.platform`: ``build_platform(args)``, ``GET /health``, ``/models``, ``/metrics``.

Three layers, three ideas:

- :class:`~acgs_workloads.serving.model.ServedModel` (:mod:`.model`) is *the model*: the one class that loads a
  verified artifact (``load()``), answers batches (``predict_batch()``, with the runtime guard of :mod:`.guard`
  when given the constitution's evaluator) and reports ``health()``. Evaluation times it for the latency gate.
- :class:`~acgs_workloads.serving.service.ModelService` (:mod:`.service`) is *the request pipeline* of one
  deployment: artifact/deployment consistency, the constitution-hash check before queueing, batching,
  refusals, metrics and ``/metadata``. :mod:`.api` (FastAPI routes) and :mod:`.asgi` (metrics, API key, body
  limit) put it on HTTP; :mod:`.errors` holds the domain exceptions and the one table mapping them to HTTP codes.
- ``ModelServer`` (:mod:`.app`) is *the Ray Serve deployment*: one replica holding a ModelService, adding
  ``@serve.batch`` and pushing metrics. Its name is ``contract.INGRESS_DEPLOYMENT``, used by the operator.

Everything but :mod:`.app` and :mod:`.platform` runs without Ray, so it is unit-tested with FastAPI's
TestClient. Importing this package imports neither Ray nor torch. The arguments (``ModelAppArgs``,
``PlatformArgs``) are documents of :mod:`acgs_workloads.contract`.
"""
