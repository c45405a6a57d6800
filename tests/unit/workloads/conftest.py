"""Fixtures of the component unit tests. torch is imported before the Rego engine is ever loaded:
loading regopy's library first makes a later ``import torch`` abort the process."""

from __future__ import annotations

import pytest
import torch  # noqa: F401  (import order matters, see module docstring)

from acgs_workloads.constitution import ConstitutionEvaluator, default_constitution
from acgs_workloads.contract import ConstitutionSnapshot


@pytest.fixture(scope="session")
def constitution() -> ConstitutionSnapshot:
    return default_constitution()


@pytest.fixture(scope="session")
def evaluator(constitution: ConstitutionSnapshot) -> ConstitutionEvaluator:
    return ConstitutionEvaluator(constitution)
