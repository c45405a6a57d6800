"""The integrity half of a ModelDeployment's observe step: signature verification and re-evaluation.

Both read or act on the model's artifact directory before :func:`build.decide` judges it:

- :func:`verify` finds the deployment's public keys, verifies the model directory's signature and traces
  its lineage (a failure becomes the gate's ``SignatureInvalid``);
- :func:`reevaluate` follows ``spec.onConstitutionChange: reevaluate``: a model evaluated under an older
  Constitution gets an evaluation-only Ray job (``python -m acgs_workloads.reevaluate``) on its held-out
  data under the new rules; its record (``evaluations/<hash>.json``) is signed with the model, and the
  gate then judges the new score under the new hash.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from dataclasses import dataclass, replace
from typing import Any

from acgs_operator import signing
from acgs_operator.api.v1alpha1 import ModelDeploymentSpec, ReevaluationStatus, SecretKeySelector
from acgs_operator.modeldeployment.build import ModelEvidence, Retraining
from acgs_operator.rayclient import JobStatus, RayClient
from acgs_operator.trainingjob.build import log_tail
from acgs_workloads.contract import ConstitutionSnapshot, EvaluationRecord, parse_evaluation


@dataclass(frozen=True)
class Verified:
    evidence: ModelEvidence
    keys: tuple[str, ...] = ()  # handed to the replicas, which verify again before they load


async def verify(core_v1: Any, md: ModelDeploymentSpec, namespace: str, evidence: ModelEvidence) -> Verified:
    """Verify the signature of the model the evidence names with the deployment's keys; trace its lineage."""
    from acgs_workloads import signing as model_signing
    from acgs_workloads import storage

    if not evidence.uri or not evidence.complete:
        return Verified(evidence)
    keys = await signing.verification_keys(core_v1, md, namespace)
    if keys.error:
        return Verified(replace(evidence, signature_error=f"signature not verified: {keys.error}"))
    if not keys.keys:  # IfKeysConfigured without keys, or Disabled: traced (when readable), not verified
        try:
            lineage = await asyncio.to_thread(model_signing.trace, evidence.uri, None)
        except (storage.StorageError, OSError, ValueError):
            return Verified(evidence)  # the replica reports an unreadable artifact when it loads it
        return Verified(replace(evidence, lineage=lineage))
    try:
        info = await asyncio.to_thread(model_signing.verify_model, evidence.uri, list(keys.keys))
        lineage = await asyncio.to_thread(model_signing.trace, evidence.uri, info)
    except (model_signing.SignatureError, model_signing.SigningKeyError) as exc:
        return Verified(replace(evidence, signature_error=str(exc)))
    except (storage.StorageError, OSError, ValueError) as exc:
        return Verified(replace(evidence, signature_error=f"signature not verified: {exc}"))
    if lineage.model_sha256 != evidence.sha256:
        error = f"the signed metadata names weights {lineage.model_sha256}, the deployment expects {evidence.sha256}"
        return Verified(replace(evidence, signature_error=error))
    return Verified(replace(evidence, lineage=lineage), keys.keys)


# --------------------------------------------------------------------------- re-evaluation


def submission_id(uid: str, constitution_hash: str, model_sha256: str) -> str:
    """One evaluation-only job per (deployment, Constitution, model): a restarted operator finds it again."""
    return f"acgs-eval-{uid.split('-')[0]}-{constitution_hash}-{model_sha256[:12]}"


def entrypoint(python: str, model_uri: str, constitution: ConstitutionSnapshot, min_score: float) -> str:
    snapshot = json.dumps(constitution.wire(), separators=(",", ":"))
    return (f"{python} -m acgs_workloads.reevaluate --model-uri {shlex.quote(model_uri)} "
            f"--constitution {shlex.quote(snapshot)} --min-compliance {min_score}")


def _complete(record: EvaluationRecord, submission: str | None, train_seconds: float | None) -> ReevaluationStatus:
    versus = f" (training took {train_seconds:.1f} s)" if train_seconds else ""
    return ReevaluationStatus(
        constitution_hash=record.constitution_hash,
        submission_id=submission,
        phase="Complete",
        score=record.compliance.score,
        seconds=round(record.seconds, 3),
        message=(f"re-evaluated under constitution {record.constitution_hash} without retraining: compliance "
                 f"{record.compliance.score:.4f} on {record.compliance.evaluated_examples} held-out requests in "
                 f"{record.seconds:.1f} s{versus}"),
    )


async def reevaluate(
    *,
    ray: RayClient,
    core_v1: Any,
    md: ModelDeploymentSpec,
    namespace: str,
    name: str,
    uid: str,
    constitution: ConstitutionSnapshot,
    evidence: ModelEvidence,
    signing_key: tuple[str, SecretKeySelector] | None,
    python: str,
    previous: ReevaluationStatus | None = None,
) -> tuple[ModelEvidence, ReevaluationStatus | None]:
    """The evidence under ``constitution`` once the model has been re-evaluated under it, and the run's status.

    Submits (or follows) the evaluation-only Ray job until its record exists; the first time the record is
    seen (``previous``, the status as written, is not yet Complete for it) the model directory is signed
    again, so that the signature covers the record. Raises :class:`RayUnavailable` when the cluster cannot be
    reached.
    """
    from acgs_workloads import storage

    uri, sha = evidence.uri or "", evidence.sha256 or ""
    sid = submission_id(uid, constitution.hash, sha)

    async def judged(record: EvaluationRecord, done: ReevaluationStatus | None = None
                     ) -> tuple[ModelEvidence, ReevaluationStatus]:
        updated = replace(evidence, constitution_hash=record.constitution_hash, score=record.compliance.score,
                          reevaluated=True)
        if done is not None:  # reported already: no more reads of the metadata
            return updated, done
        return updated, _complete(record, sid, await asyncio.to_thread(_train_seconds, uri))

    def failed(message: str) -> tuple[ModelEvidence, ReevaluationStatus]:
        return evidence, ReevaluationStatus(constitution_hash=constitution.hash, submission_id=sid, phase="Failed",
                                            message=message)

    try:
        record = await asyncio.to_thread(storage.read_evaluation, uri, constitution.hash)
    except (storage.StorageError, ValueError) as exc:
        return failed(f"the re-evaluation record cannot be read: {exc}")
    if record is not None and record.model_sha256 == sha:
        done = (previous is not None and previous.phase == "Complete" and previous.submission_id == sid
                and previous.constitution_hash == constitution.hash)
        if done:
            return await judged(record, previous)
        if error := await _sign(core_v1, signing_key, uri):
            return failed(error)
        return await judged(record)
    info = await ray.get_job(sid)
    if info is None:
        await ray.submit_job(
            submission_id=sid,
            entrypoint=entrypoint(python, uri, constitution, md.compliance.min_score),
            runtime_env={"env_vars": {"PYTHONUNBUFFERED": "1", "ACGS_RESOURCE": f"{namespace}/{name}"}},
            metadata={"acgs.io/kind": "ModelDeployment", "acgs.io/resource": f"{namespace}/{name}",
                      "acgs.io/uid": uid, "acgs.io/purpose": "reevaluation"},
        )
        return evidence, ReevaluationStatus(constitution_hash=constitution.hash, submission_id=sid, phase="Running")
    if not info.status.terminal:
        return evidence, ReevaluationStatus(constitution_hash=constitution.hash, submission_id=sid, phase="Running")
    logs = await ray.job_logs(sid)
    event = parse_evaluation(logs)
    if info.status is not JobStatus.SUCCEEDED or event is None:
        return failed(f"re-evaluation job {sid} {info.status.value}: {log_tail(logs)}")
    if event.record.model_sha256 != sha:
        return failed(f"re-evaluation job {sid} judged weights {event.record.model_sha256}, not {sha}")
    if error := await _sign(core_v1, signing_key, uri):
        return failed(error)
    return await judged(event.record)


async def _sign(core_v1: Any, signing_key: tuple[str, SecretKeySelector] | None, uri: str) -> str:
    """Sign the model directory again (now with its record); the error, or "" (also when no key is set)."""
    from acgs_workloads import signing as model_signing
    from acgs_workloads import storage

    if signing_key is None:
        return ""
    try:
        pem = await signing.read_secret_key(core_v1, *signing_key)
        await asyncio.to_thread(model_signing.sign_model, uri, pem)
    except (signing.KeyUnavailable, model_signing.SignatureError, model_signing.SigningKeyError,
            storage.StorageError, OSError, ValueError) as exc:
        return f"the re-evaluation record is not signed: {exc}"
    return ""


def _train_seconds(uri: str) -> float | None:
    from acgs_workloads import storage

    try:
        seconds = storage.read_metadata(uri).extra.get("trainWallSeconds")
    except (storage.StorageError, OSError, ValueError):
        return None
    return float(seconds) if isinstance(seconds, int | float) else None


# --------------------------------------------------------------------------- retraining


async def retrain(
    custom: Any, md: ModelDeploymentSpec, namespace: str, constitution: ConstitutionSnapshot,
    entry: dict[str, Any] | None,
) -> Retraining:
    """``onConstitutionChange: retrain``: give the TrainingJob a new generation for the new Constitution (its
    ``spec.retrainedFor``), once; the gate then waits for that generation and serves its model."""
    from acgs_operator.api.v1alpha1 import GROUP, VERSION

    ref = md.model.training_job_ref
    if ref is None:  # refused at apply time (CEL); a model given by uri cannot be retrained
        return Retraining("a model given by uri cannot be retrained", error=True)
    job = f"TrainingJob {namespace}/{ref.name}"
    if ((entry or {}).get("spec") or {}).get("retrainedFor") == constitution.hash:
        return Retraining(f"{job} retrains for constitution {constitution.hash}")
    if custom is None:
        return Retraining(f"cannot start a new generation of {job}: no API client", error=True)
    try:
        await asyncio.to_thread(custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, "trainingjobs",
                                ref.name, {"spec": {"retrainedFor": constitution.hash}})
    except Exception as exc:  # kubernetes ApiException or transport errors
        return Retraining(f"cannot start a new generation of {job}: {getattr(exc, 'reason', exc)}", error=True)
    return Retraining(f"started a new generation of {job} for constitution {constitution.hash}", started=True)
