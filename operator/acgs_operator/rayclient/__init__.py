"""How the operator reaches Ray: one small interface over the dashboard's HTTP APIs.

``DashboardClient`` talks to a real cluster (Jobs API ``/api/jobs/``, Serve REST API
``/api/serve/applications/``); ``FakeRayClient`` keeps the same behaviour in memory for unit tests.
The operator never imports ray itself.
"""

from acgs_operator.rayclient.base import (
    JobInfo,
    JobStatus,
    RayClient,
    RayError,
    RayUnavailable,
    ServeApplication,
)
from acgs_operator.rayclient.fake import FakeRayClient
from acgs_operator.rayclient.http import DashboardClient

__all__ = [
    "DashboardClient",
    "FakeRayClient",
    "JobInfo",
    "JobStatus",
    "RayClient",
    "RayError",
    "RayUnavailable",
    "ServeApplication",
]
