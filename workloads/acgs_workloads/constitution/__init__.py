"""The constitution: principles as Rego v1 modules, their hash, compilation and batched evaluation.

:class:`ConstitutionEvaluator` is the one Rego evaluator (labels, evaluation, the serving runtime guard).
Torch-free: the operator imports ``constitution_hash`` and ``compile_errors`` from here.
"""

from acgs_workloads.constitution.compiler import compile_errors, package_of
from acgs_workloads.constitution.engine import RegoEvalError
from acgs_workloads.constitution.evaluator import (
    SERVING_CACHE_SIZE,
    ConstitutionEvaluator,
    EvaluatorStats,
    Violations,
    compliance_share,
    violation_counts,
)
from acgs_workloads.constitution.hashing import as_principles, canonical_json, constitution_hash
from acgs_workloads.constitution.loader import default_constitution, load_constitution, snapshot_from_manifest

__all__ = [
    "SERVING_CACHE_SIZE",
    "ConstitutionEvaluator",
    "EvaluatorStats",
    "RegoEvalError",
    "Violations",
    "as_principles",
    "canonical_json",
    "compile_errors",
    "compliance_share",
    "constitution_hash",
    "default_constitution",
    "load_constitution",
    "package_of",
    "snapshot_from_manifest",
    "violation_counts",
]
