"""The six model components and their registry: ``get(name) -> Component``.

Importing this package pulls in torch (the components hold models); the operator never imports it.

Each component (``constitutional_ai``, ``policy_governance``, ``multi_agent_coordination``,
``performance_optimization``, ``transformer_efficiency``, ``wina_optimization``) provides a seeded numpy
generator, a model built from ``ModelSpec``, the constitution's decision ``input`` for its predictions, and
pydantic request/response schemas; :class:`acgs_workloads.serving.model.ServedModel` serves it.
Train one with the entry point, e.g.::

    python -m acgs_workloads.train --config run.json   # a TrainRunConfig (camelCase JSON or YAML)
"""

from __future__ import annotations

from acgs_workloads.components.base import Component
from acgs_workloads.contract import COMPONENTS


def _registry() -> dict[str, type[Component]]:
    from acgs_workloads.components.constitutional_ai import ConstitutionalAI
    from acgs_workloads.components.multi_agent_coordination import MultiAgentCoordination
    from acgs_workloads.components.performance_optimization import PerformanceOptimization
    from acgs_workloads.components.policy_governance import PolicyGovernance
    from acgs_workloads.components.transformer_efficiency import TransformerEfficiency
    from acgs_workloads.components.wina_optimization import WinaOptimization

    classes: list[type[Component]] = [
        ConstitutionalAI, PolicyGovernance, MultiAgentCoordination, PerformanceOptimization,
        TransformerEfficiency, WinaOptimization,
    ]
    return {c.name: c for c in classes}


def names() -> tuple[str, ...]:
    """Every component name, in the contract's order."""
    return COMPONENTS


def get(name: str) -> Component:
    """The component called ``name`` (one of ``acgs_workloads.contract.COMPONENTS``)."""
    registry = _registry()
    if name not in registry:
        raise KeyError(f"unknown component {name!r}; expected one of {', '.join(COMPONENTS)}")
    return registry[name]()


__all__ = ["Component", "get", "names"]
