"""Typed reasons for conditions and Kubernetes events: every transition names one of these."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # Constitution
    COMPILED = "Compiled"
    COMPILE_FAILED = "CompileFailed"
    HASH_CHANGED = "HashChanged"
    # any kind
    INVALID_SPEC = "InvalidSpec"
    RECONCILE_ERROR = "ReconcileError"


class ConditionType(StrEnum):
    VALID = "Valid"
    SUBMITTED = "Submitted"
    RUNNING = "Running"
    COMPLETE = "Complete"
    FAILED = "Failed"
    COMPLIANT = "Compliant"
    COMPLIANCE_PASSED = "CompliancePassed"
    READY = "Ready"
