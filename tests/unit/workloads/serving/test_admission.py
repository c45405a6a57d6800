"""Load shedding in the replica: the admission middleware refuses a prediction beyond the limit at once, with
503, ``Retry-After`` and the errors table's body, and the refusal is counted as ``overloaded``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from acgs_workloads.contract import ModelAppArgs, QueueArgs
from acgs_workloads.serving.asgi import AdmissionMiddleware, Message, MetricsMiddleware, Scope
from acgs_workloads.serving.errors import REASON_BY_CODE, ModelNotLoaded, Overloaded, openapi_responses
from acgs_workloads.serving.metrics import ReplicaMetrics, render_prometheus

pytestmark = pytest.mark.unit

HASH = "cdd01ef066bc6cf2"


class SlowApp:
    """An ASGI app that answers 200 after ``release`` is set, counting how many requests it works on."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0
        self.most = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})
        finally:
            self.running -= 1


def scope(path: str = "/predict", root: str = "/constitutional-ai") -> Scope:
    return {"type": "http", "method": "POST", "path": root + path, "root_path": root, "headers": []}


async def call(app: Any, path: str = "/predict") -> tuple[int, dict[bytes, bytes], dict[str, Any]]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope(path), receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(start["status"]), dict(start["headers"]), json.loads(body or b"{}")


def test_beyond_the_limit_is_refused_at_once_with_retry_after_and_the_limit() -> None:
    async def scenario() -> None:
        slow = SlowApp()
        app = AdmissionMiddleware(slow, limit=3, retry_after_seconds=2, served_hash=HASH)
        admitted = [asyncio.create_task(call(app)) for _ in range(3)]
        await asyncio.sleep(0.01)
        assert slow.running == 3 and app.in_flight == 3
        status, headers, body = await asyncio.wait_for(call(app), timeout=1.0)  # answered without waiting
        assert status == 503
        assert headers[b"retry-after"] == b"2" and headers[b"content-type"] == b"application/json"
        assert body["limit"] == {"maxOngoingRequests": 3} and body["retry_after_seconds"] == 2
        assert "queue.maxOngoingRequests=3" in body["detail"] and body["constitutional_hash"] == HASH
        slow.release.set()
        assert [s for s, _, _ in await asyncio.gather(*admitted)] == [200, 200, 200]
        assert app.in_flight == 0 and slow.most == 3
        assert (await call(app))[0] == 200  # a slot is free again

    asyncio.run(scenario())


def test_within_the_limit_everything_is_served() -> None:
    async def scenario() -> None:
        slow = SlowApp()
        slow.release.set()
        app = AdmissionMiddleware(slow, limit=4, retry_after_seconds=1, served_hash=HASH)
        results = await asyncio.gather(*(call(app) for _ in range(4)))
        assert [s for s, _, _ in results] == [200] * 4

    asyncio.run(scenario())


def test_only_predictions_are_admitted_and_a_failing_app_frees_its_slot() -> None:
    async def failing(scope: Scope, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    async def scenario() -> None:
        slow = SlowApp()
        app = AdmissionMiddleware(slow, limit=1, retry_after_seconds=1, served_hash=HASH)
        held = asyncio.create_task(call(app))
        await asyncio.sleep(0.01)
        health = asyncio.create_task(call(app, "/health"))  # not counted: health and metadata stay answerable
        await asyncio.sleep(0.01)
        assert slow.running == 2 and app.in_flight == 1
        slow.release.set()
        await asyncio.gather(held, health)

        broken = AdmissionMiddleware(failing, limit=1, retry_after_seconds=1)
        with pytest.raises(RuntimeError):
            await call(broken)
        assert broken.in_flight == 0

    asyncio.run(scenario())


def test_the_refusal_is_counted_as_overloaded_in_the_metrics() -> None:
    async def scenario() -> ReplicaMetrics:
        slow = SlowApp()
        metrics = ReplicaMetrics()
        app = MetricsMiddleware(AdmissionMiddleware(slow, limit=1, retry_after_seconds=1, served_hash=HASH), metrics)
        held = asyncio.create_task(call(app))
        await asyncio.sleep(0.01)
        assert (await call(app))[0] == 503
        slow.release.set()
        await held
        return metrics

    snapshot = asyncio.run(scenario()).snapshot()
    assert snapshot["refusals"] == {"overloaded": 1}
    assert ["/predict", 503, 1] in snapshot["requests"] and ["/predict", 200, 1] in snapshot["requests"]
    text = render_prometheus({"ns-md": [snapshot]})
    assert 'acgs_serve_refusals_total{app="ns-md",reason="overloaded"} 1.0' in text


def test_overloaded_is_one_row_of_the_errors_table() -> None:
    assert (Overloaded.status_code, Overloaded.reason) == (503, "overloaded")
    assert REASON_BY_CODE[503] == ModelNotLoaded.reason  # an unnamed 503 keeps the first row's reason
    response = openapi_responses()[503]
    assert "Overloaded" in response["description"] and "no model loaded" in response["description"]
    assert {"limit", "retry_after_seconds"} <= set(response["model"].model_fields)


def test_the_replica_args_carry_the_queue_with_bounded_defaults() -> None:
    assert QueueArgs().wire() == {"maxOngoingRequests": 16, "maxQueuedRequests": 64, "retryAfterSeconds": 1}
    assert ModelAppArgs.model_fields["queue"].default_factory is QueueArgs
    for bad in ({"maxQueuedRequests": -1}, {"maxQueuedRequests": 0}, {"maxOngoingRequests": 0},
                {"retryAfterSeconds": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            QueueArgs.model_validate(bad)
