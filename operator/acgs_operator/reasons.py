"""Typed reasons for conditions and Kubernetes events: every transition names one of these."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # Constitution
    COMPILED = "Compiled"
    COMPILE_FAILED = "CompileFailed"
    HASH_CHANGED = "HashChanged"
    HASH_ALIASES_CHANGED = "HashAliasesChanged"
    # TrainingJob
    SUBMITTED = "Submitted"
    RUNNING = "Running"
    EVALUATING = "Evaluating"
    SUCCEEDED = "Succeeded"
    SUSPENDED = "Suspended"
    SPEC_CHANGED = "SpecChanged"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    RAY_JOB_FAILED = "RayJobFailed"
    RAY_JOB_STOPPED = "RayJobStopped"
    RAY_JOB_LOST = "RayJobLost"
    RAY_JOB_RESUBMITTED = "RayJobResubmitted"
    RAY_CLUSTER_FAULT = "RayClusterFault"
    NO_RESULT = "NoResult"
    COMPLIANCE_PASSED = "CompliancePassed"
    COMPLIANCE_BELOW_THRESHOLD = "ComplianceBelowThreshold"
    GATES_FAILED = "GatesFailed"
    # ModelDeployment
    CONSTITUTION_CHANGED = "ConstitutionChanged"
    ARTIFACT_DIGEST_MISMATCH = "ArtifactDigestMismatch"
    SIGNATURE_INVALID = "SignatureInvalid"
    SIGNED = "Signed"
    SIGNING_FAILED = "SigningFailed"
    UNSIGNED = "Unsigned"
    REEVALUATING = "Reevaluating"
    REEVALUATED = "Reevaluated"
    REEVALUATION_FAILED = "ReevaluationFailed"
    RETRAINING = "Retraining"
    TRAINING_NOT_COMPLETE = "TrainingNotComplete"
    DEPLOYING = "Deploying"
    READY = "Ready"
    DEPLOY_FAILED = "DeployFailed"
    CANARY_SERVING = "CanaryServing"
    CANARY_BLOCKED = "CanaryBlocked"
    COMPONENT_MISMATCH = "ComponentMismatch"
    # any kind
    CONSTITUTION_NOT_READY = "ConstitutionNotReady"
    RAY_UNAVAILABLE = "RayUnavailable"
    SECRET_UNAVAILABLE = "SecretUnavailable"
    INVALID_SPEC = "InvalidSpec"


class ConditionType(StrEnum):
    VALID = "Valid"
    SUBMITTED = "Submitted"
    RUNNING = "Running"
    COMPLETE = "Complete"
    FAILED = "Failed"
    COMPLIANT = "Compliant"
    SIGNED = "Signed"
    COMPLIANCE_PASSED = "CompliancePassed"
    READY = "Ready"
