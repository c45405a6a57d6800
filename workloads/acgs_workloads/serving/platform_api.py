"""The platform application's HTTP API (``GET /health``, ``GET /models``, ``GET /metrics``), without Ray.

The Serve deployment (:mod:`acgs_workloads.serving.platform`) supplies a :class:`PlatformSource` backed by
``serve.status()``, model handles and the metrics store; unit tests supply a fake.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from acgs_workloads.contract import INGRESS_DEPLOYMENT, WithdrawnRoute
from acgs_workloads.serving.metrics import PROMETHEUS_CONTENT_TYPE, Snapshot, render_prometheus

HEALTHY_APP_STATES = frozenset({"RUNNING"})


class PlatformSource(Protocol):
    async def status(self, fresh: bool = False) -> dict[str, Any]:
        """``serve.status()`` as plain data: ``{"applications": {name: {status, message, deployments}}}``;
        ``fresh``: read now, not from state kept by a background task."""
        ...

    async def model_metadata(self, app: str) -> dict[str, Any]:
        """The ``/metadata`` of model application ``app``."""
        ...

    async def snapshots(self) -> dict[str, list[Snapshot]]:
        """Latest metrics snapshot of every model replica, per application."""
        ...


def _text(value: Any) -> str:
    return str(getattr(value, "value", value))


def summarize_status(status: dict[str, Any]) -> dict[str, Any]:
    """Per application: state, message and deployments with their replica states; overall health."""
    apps: dict[str, Any] = {}
    for name, app in sorted((status.get("applications") or {}).items()):
        deployments = {
            dep_name: {
                "status": _text(dep.get("status")),
                "message": dep.get("message", ""),
                "replicaStates": {_text(k): int(v) for k, v in (dep.get("replica_states") or {}).items()},
            }
            for dep_name, dep in sorted((app.get("deployments") or {}).items())
        }
        apps[name] = {"status": _text(app.get("status")), "message": app.get("message", ""),
                      "deployments": deployments}
    healthy = all(a["status"] in HEALTHY_APP_STATES for a in apps.values())
    return {"status": "healthy" if healthy else "degraded", "applications": apps}


def app_message(app: dict[str, Any]) -> str:
    """The application's message and its deployments' messages (where a replica's constructor error is)."""
    parts = [app["message"]] if app["message"] else []
    parts += [f"{name}: {dep['message']}" for name, dep in app["deployments"].items() if dep["message"]]
    return "\n".join(parts)


def model_apps(summary: dict[str, Any]) -> list[str]:
    """Applications whose ingress is a ModelServer (the model deployments)."""
    return [name for name, app in summary["applications"].items() if INGRESS_DEPLOYMENT in app["deployments"]]


def withdrawn_route(path: str, withdrawn: Sequence[WithdrawnRoute]) -> WithdrawnRoute | None:
    """The withdrawn route ``path`` falls under (longest prefix), if any."""
    matches = [w for w in withdrawn if path == w.prefix or path.startswith(w.prefix.rstrip("/") + "/")]
    return max(matches, key=lambda w: len(w.prefix), default=None)


def create_platform_api(source: PlatformSource, withdrawn: Sequence[WithdrawnRoute] = ()) -> FastAPI:
    app = FastAPI(title="ACGS platform", version="v1alpha1",
                  description="Health, served models and metrics of the ACGS Serve applications.")

    @app.get("/health", summary="Every Serve application and its state (503 when one is not RUNNING)")
    async def health() -> JSONResponse:
        summary = summarize_status(await source.status())
        if summary["status"] != "healthy":  # never a 503 from state that may be half a second old
            summary = summarize_status(await source.status(fresh=True))
        return JSONResponse(summary, status_code=200 if summary["status"] == "healthy" else 503)

    @app.get("/models", summary="Served models with constitution hashes and artifact digests")
    async def models() -> dict[str, Any]:
        summary = summarize_status(await source.status())
        if any(summary["applications"][name]["status"] != "RUNNING" for name in model_apps(summary)):
            summary = summarize_status(await source.status(fresh=True))  # as /health: not from stale state
        out = []
        for name in model_apps(summary):
            entry: dict[str, Any] = {"application": name, "status": summary["applications"][name]["status"]}
            if entry["status"] == "RUNNING":
                try:
                    entry.update(await source.model_metadata(name))
                except Exception as error:  # one broken app must not hide the others
                    entry["error"] = f"{type(error).__name__}: {error}"
            else:
                entry["message"] = app_message(summary["applications"][name])
            out.append(entry)
        return {"models": out}

    @app.get("/metrics", summary="Prometheus text exposition of the model servers' counters",
             response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(render_prometheus(await source.snapshots()), media_type=PROMETHEUS_CONTENT_TYPE)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def not_served(path: str) -> JSONResponse:
        """A route whose deployment is withdrawn (Blocked) says why, with 503; any other unknown route is 404."""
        route = withdrawn_route("/" + path, withdrawn)
        if route is None:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        headers = {"Retry-After": str(route.retry_after_seconds)} if route.retry_after_seconds else None
        body = {"error": "not_served", "reason": route.reason, "detail": route.message,
                "application": route.application}
        return JSONResponse(body, status_code=503, headers=headers)

    return app
