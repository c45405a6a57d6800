"""The constitution: principles as Rego v1 modules, their hash, compilation and batched evaluation.

Torch-free: the operator imports ``constitution_hash`` and ``compile_errors`` from here.
"""

from acgs_workloads.constitution.compiler import compile_errors, package_of
from acgs_workloads.constitution.hashing import as_principles, canonical_json, constitution_hash

__all__ = ["as_principles", "canonical_json", "compile_errors", "constitution_hash", "package_of"]
