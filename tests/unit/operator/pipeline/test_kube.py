"""The pipeline's API client: calls that meet a busy API server are asked again."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import IncompleteRead, MaxRetryError, ProtocolError

from acgs_operator.pipeline.kube import ATTEMPTS, Kube

pytestmark = pytest.mark.unit


class Flaky:
    """Answers each call, whatever the method, with the next of ``answers`` (an exception is raised)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(method)
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        return call



def kube_with(custom: Flaky, core: Flaky | None = None) -> Kube:
    kube = Kube.__new__(Kube)  # no kubeconfig: only the fakes are used
    kube.custom = custom  # type: ignore[assignment]
    kube.core = core or Flaky()  # type: ignore[assignment]
    kube.retry_wait = 0.0
    return kube


def test_a_gateway_timeout_is_asked_again() -> None:
    custom = Flaky(ApiException(status=504), ApiException(status=503), {"kind": "TrainingJob"})
    assert kube_with(custom).get("TrainingJob", "a", "ns") == {"kind": "TrainingJob"}
    assert len(custom.calls) == 3


def test_a_connection_broken_mid_answer_is_asked_again() -> None:
    broken = ProtocolError("Connection broken: IncompleteRead(4038 bytes read)", IncompleteRead(4038, 100))
    custom = Flaky(broken, MaxRetryError(None, "/apis", "refused"), {"kind": "TrainingJob"})  # type: ignore[arg-type]
    assert kube_with(custom).get("TrainingJob", "a", "ns") == {"kind": "TrainingJob"}
    assert len(custom.calls) == 3
    custom = Flaky(*[ProtocolError("Connection aborted.")] * ATTEMPTS)
    with pytest.raises(ProtocolError):
        kube_with(custom).get("TrainingJob", "a", "ns")
    assert len(custom.calls) == ATTEMPTS


def test_not_found_is_none_and_a_refusal_is_raised_at_once() -> None:
    assert kube_with(Flaky(ApiException(status=404))).get("TrainingJob", "a", "ns") is None
    custom = Flaky(ApiException(status=403), {"kind": "TrainingJob"})
    with pytest.raises(ApiException) as raised:
        kube_with(custom).get("TrainingJob", "a", "ns")
    assert raised.value.status == 403 and len(custom.calls) == 1


def test_an_api_server_that_stays_busy_is_an_error() -> None:
    custom = Flaky(*[ApiException(status=504)] * ATTEMPTS)
    with pytest.raises(ApiException) as raised:
        kube_with(custom).get("TrainingJob", "a", "ns")
    assert raised.value.status == 504 and len(custom.calls) == ATTEMPTS


def test_apply_and_delete_are_asked_again_and_a_conflict_is_not() -> None:
    obj = {"apiVersion": "acgs.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "a"}, "spec": {}}
    custom = Flaky(ApiException(status=429), ApiException(status=502), None)
    kube_with(custom).apply(obj, "ns")
    assert custom.calls == ["patch_namespaced_custom_object"] * 3
    custom = Flaky(ApiException(status=503), {})
    assert kube_with(custom).delete("TrainingJob", "a", "ns") is True and len(custom.calls) == 2
    custom = Flaky(ApiException(status=504), ApiException(status=404))  # the first try deleted it
    assert kube_with(custom).delete("TrainingJob", "a", "ns") is False
    custom = Flaky(ApiException(status=409))
    with pytest.raises(ApiException):
        kube_with(custom).apply(obj, "ns")
    assert len(custom.calls) == 1


def test_a_namespace_made_by_a_try_whose_answer_was_lost_is_there() -> None:
    core = Flaky(ApiException(status=404), ApiException(status=504), ApiException(status=409))
    assert kube_with(Flaky(), core).ensure_namespace("ns") is False
    assert core.calls == ["read_namespace", "create_namespace", "create_namespace"]
    core = Flaky(ApiException(status=503), ApiException(status=404), {})
    assert kube_with(Flaky(), core).ensure_namespace("ns") is True
    core = Flaky(ApiException(status=403))
    with pytest.raises(ApiException):
        kube_with(Flaky(), core).ensure_namespace("ns")
