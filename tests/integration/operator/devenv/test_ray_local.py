"""The local Ray head: dashboard Jobs and Serve APIs answer on loopback."""

import json
import urllib.request


def test_dashboard_apis_answer(ray_head) -> None:  # type: ignore[no-untyped-def]
    assert ray_head.dashboard_url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(f"{ray_head.dashboard_url}/api/version", timeout=10) as resp:
        assert "ray_version" in json.load(resp)
    with urllib.request.urlopen(f"{ray_head.dashboard_url}/api/jobs/", timeout=10) as resp:
        assert isinstance(json.load(resp), list)
