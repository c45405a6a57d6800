"""The Kubernetes API as the pipeline uses it: namespaces and ACGS objects (server-side apply, get, delete)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from acgs_operator.api.v1alpha1 import GROUP, VERSION

FIELD_MANAGER = "acgs-pipeline"
# answers that say "not now" rather than "no": an API server busy under load (a 504 after its request timeout,
# seen while six trainings shared two cores with it) is asked again, not taken as the stage's failure. Every call
# the pipeline makes may be repeated: reads, server-side apply with forced conflicts, deletes and a namespace
# create (whose repeat may find the namespace made by the first try). A connection the server drops, or an answer
# cut short ("Connection broken: IncompleteRead", seen in a pipeline run while the six jobs started), is asked
# again the same way
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
ATTEMPTS = 4
T = TypeVar("T")
PLURALS = {"Constitution": "constitutions", "TrainingJob": "trainingjobs", "ModelDeployment": "modeldeployments"}


def _as_dict(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object from the API server, got {type(value).__name__}")
    return value


class Kube:
    """A kubernetes client bound to one kubeconfig."""

    retry_wait = 1.0  # seconds before the first repeat of a call; doubled for each further one

    def __init__(self, kubeconfig: Path | None = None) -> None:
        from kubernetes import client, config

        self.api_client = config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None)
        self.core = client.CoreV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)

    def close(self) -> None:
        self.api_client.close()

    def _call(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``call(*args, **kwargs)``; a transient error (:data:`TRANSIENT_STATUSES`, or the connection failing:
        urllib3's errors) is retried :data:`ATTEMPTS` times in all, with backoff, before it is raised; any other
        error at once."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError as ConnectionFailed

        for attempt in range(ATTEMPTS):
            try:
                return call(*args, **kwargs)
            except ApiException as exc:
                if exc.status not in TRANSIENT_STATUSES or attempt == ATTEMPTS - 1:
                    raise
            except ConnectionFailed:
                if attempt == ATTEMPTS - 1:
                    raise
            time.sleep(self.retry_wait * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def ensure_namespace(self, name: str) -> bool:
        """Create the namespace if absent; True when it was created."""
        from kubernetes.client.exceptions import ApiException

        try:
            self._call(self.core.read_namespace, name)
            return False
        except ApiException as exc:
            if exc.status != 404:
                raise
        from kubernetes import client

        try:
            self._call(self.core.create_namespace, client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        except ApiException as exc:
            if exc.status != 409:  # made meanwhile (by another client, or by a try whose answer was lost)
                raise
            return False
        return True

    def apply(self, obj: dict[str, Any], namespace: str) -> None:
        """Server-side apply of one ACGS object (field manager ``acgs-pipeline``, conflicts forced).

        The client does not decode the answer to an apply patch; read the object with ``get``.
        """
        name = obj["metadata"]["name"]
        body = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
        self._call(
            self.custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, PLURALS[obj["kind"]], name, body,
            field_manager=FIELD_MANAGER, force=True, _content_type="application/apply-patch+yaml",
        )

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        """The object, or None when there is none."""
        from kubernetes.client.exceptions import ApiException

        try:
            return _as_dict(self._call(self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace,
                                       PLURALS[kind], name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def delete(self, kind: str, name: str, namespace: str) -> bool:
        """Delete (finalizers run); True when it existed (False too when a repeated delete finds it gone)."""
        from kubernetes.client.exceptions import ApiException

        try:
            self._call(self.custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, PLURALS[kind], name)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    def delete_and_wait(self, objects: list[tuple[str, str]], namespace: str, timeout: float = 120) -> list[str]:
        """Delete ``(kind, name)`` pairs and wait until they are gone; the names that existed."""
        existed = [f"{kind}/{name}" for kind, name in objects if self.delete(kind, name, namespace)]
        deadline = time.monotonic() + timeout
        while any(self.get(kind, name, namespace) is not None for kind, name in objects):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{', '.join(existed)} still present after {timeout:.0f}s (is the operator running?)"
                )
            time.sleep(0.5)
        return existed
