"""One Ray client per dashboard address: the operator's default, or a resource's override."""

from __future__ import annotations

from collections.abc import Callable

from acgs_operator.rayclient.base import RayClient
from acgs_operator.rayclient.http import DashboardClient


class RayClients:
    def __init__(self, default_address: str, factory: Callable[[str], RayClient] = DashboardClient) -> None:
        self.default_address = default_address
        self._factory = factory
        self._clients: dict[str, RayClient] = {}

    def get(self, address: str | None = None) -> RayClient:
        key = (address or self.default_address).rstrip("/")
        if key not in self._clients:
            self._clients[key] = self._factory(key)
        return self._clients[key]
