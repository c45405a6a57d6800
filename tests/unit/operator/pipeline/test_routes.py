"""Which requests the pipeline sends (pure) and how answers are recorded (httpx mock transport)."""

from __future__ import annotations

import json

import httpx
import pytest

from acgs_operator.pipeline import routes

HASH = "cd5ebfe6b284d24b"


def served() -> list[routes.Served]:
    return [routes.Served(c, c, f"http://127.0.0.1:8123/{c}") for c in routes.BODIES]


def test_plan_covers_every_route_with_the_right_hash() -> None:
    probes = routes.plan(served(), HASH, samples=7)
    by_route = {p.route: p for p in probes}
    for c in routes.BODIES:
        good = by_route[f"POST /{c}/predict"]
        assert good.count == 7 and good.expect == 200 and good.body is not None
        assert good.body["constitutional_hash"] == HASH and good.url == f"http://127.0.0.1:8123/{c}/predict"
        wrong = by_route[f"POST /{c}/predict (wrong hash)"]
        assert wrong.expect == 409 and wrong.body is not None and wrong.body["constitutional_hash"] != HASH
        assert by_route[f"GET /{c}/health"].expect == 200
    for path in ("/health", "/models", "/metrics"):
        assert by_route[f"GET {path}"].url == f"http://127.0.0.1:8123{path}"
    assert routes.plan([], HASH, 5) == []


def test_wrong_hash_is_never_the_served_one() -> None:
    assert routes.wrong_hash(HASH) != HASH
    assert routes.wrong_hash("0" * 16) != "0" * 16


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([], 50, None), ([5.0], 99, 5.0), ([1.0, 2.0, 3.0, 4.0], 50, 2.5), (list(map(float, range(1, 101))), 99, 99.01),
])
def test_percentile_matches_linear_interpolation(values: list[float], q: float, expected: float | None) -> None:
    assert routes.percentile(values, q) == expected


def test_run_probe_records_codes_latencies_and_errors() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        code = 200 if body["constitutional_hash"] == HASH else 409
        return httpx.Response(code, json={"served_hash": HASH})

    ticks = iter(range(100))
    client = httpx.Client(transport=httpx.MockTransport(handler))
    probe = routes.plan(served()[:1], HASH, samples=3)[0]
    result = routes.run_probe(client, probe, clock=lambda: next(ticks) / 1000.0)
    assert result.ok and result.codes == {200: 3} and result.latencies_ms == pytest.approx([1.0, 1.0, 1.0])
    summary = result.summary()
    assert summary["p50Ms"] == pytest.approx(1.0) and summary["requests"] == 3 and summary["codes"] == {"200": 3}
    wrong = routes.plan(served()[:1], HASH, samples=3)[1]
    assert routes.run_probe(client, wrong).codes == {409: routes.WRONG_HASH_REQUESTS}
    mixed = routes.run_probe(client, routes.Probe("x", "POST", "http://h/p", 200, 1, {"constitutional_hash": "1" * 16}))
    assert not mixed.ok and "served_hash" in mixed.example

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    down = routes.run_probe(httpx.Client(transport=httpx.MockTransport(refuse)), probe)
    assert not down.ok and len(down.errors) == 3 and down.summary()["p50Ms"] is None
