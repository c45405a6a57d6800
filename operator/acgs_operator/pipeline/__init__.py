"""``acgs pipeline``: apply the samples, train all six components, serve three, call every route, report.

Modules, one job each: ``samples`` (read the manifests), ``profiles`` (scale them, pure), ``kube`` (the
Kubernetes API), ``stages`` (resource status -> stage row, pure), ``board`` (the live rich display),
``watch`` (poll until terminal), ``routes`` (the HTTP checks), ``curves`` (loss curves from the Ray job
logs), ``report`` (results -> JSON/Markdown, pure), ``plots`` (PNG figures), ``summary`` (rich tables) and
``run`` (the whole flow).
"""
