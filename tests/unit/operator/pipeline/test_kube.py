"""The pipeline's API client: reads that meet a busy API server are asked again."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from acgs_operator.pipeline.kube import GET_ATTEMPTS, Kube

pytestmark = pytest.mark.unit


class FlakyCustomObjects:
    """Answers each get with the next of ``answers`` (an exception is raised)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls = 0

    def get_namespaced_custom_object(self, *args: Any) -> Any:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def kube_with(custom: FlakyCustomObjects) -> Kube:
    kube = Kube.__new__(Kube)  # no kubeconfig: only the custom objects API is used
    kube.custom = custom  # type: ignore[assignment]
    kube.retry_wait = 0.0
    return kube


def test_a_gateway_timeout_is_asked_again() -> None:
    custom = FlakyCustomObjects(ApiException(status=504), ApiException(status=503), {"kind": "TrainingJob"})
    assert kube_with(custom).get("TrainingJob", "a", "ns") == {"kind": "TrainingJob"}
    assert custom.calls == 3


def test_not_found_is_none_and_a_refusal_is_raised_at_once() -> None:
    assert kube_with(FlakyCustomObjects(ApiException(status=404))).get("TrainingJob", "a", "ns") is None
    custom = FlakyCustomObjects(ApiException(status=403), {"kind": "TrainingJob"})
    with pytest.raises(ApiException) as raised:
        kube_with(custom).get("TrainingJob", "a", "ns")
    assert raised.value.status == 403 and custom.calls == 1


def test_an_api_server_that_stays_busy_is_an_error() -> None:
    custom = FlakyCustomObjects(*[ApiException(status=504)] * GET_ATTEMPTS)
    with pytest.raises(ApiException) as raised:
        kube_with(custom).get("TrainingJob", "a", "ns")
    assert raised.value.status == 504 and custom.calls == GET_ATTEMPTS
