"""Every document that crosses a process boundary, as torch-free, kopf-free pydantic models.

One module, used by the writer and the reader of each document:

- the spec pieces the operator's API kinds (``acgs_operator.api.v1alpha1``) are composed from, so the
  CRDs, the Ray job config and the results a training run publishes have one source of truth;
- ``TrainRunConfig``: what ``python -m acgs_workloads.train --config`` reads;
- the ``ACGS_EVENT {...}`` lines a training run prints on stdout (progress and result). The operator
  reads them from the Ray job's logs through the dashboard, so Ray workers never hold Kubernetes
  credentials;
- ``ArtifactMetadata``: the ``metadata.json`` written next to a model's weights, read by the operator's
  gate and by each Serve replica;
- ``ModelAppArgs`` / ``PlatformArgs``: the Serve application ``args`` the operator writes and a replica
  reads, with the names both sides share (application, ingress deployment, import paths).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

COMPONENTS = (
    "constitutional-ai",
    "policy-governance",
    "multi-agent-coordination",
    "performance-optimization",
    "transformer-efficiency",
    "wina-optimization",
)
Component = Literal[
    "constitutional-ai",
    "policy-governance",
    "multi-agent-coordination",
    "performance-optimization",
    "transformer-efficiency",
    "wina-optimization",
]
Severity = Literal["critical", "major", "minor"]
MixedPrecision = Literal["auto", "bf16", "fp16", "off"]
SchedulerType = Literal["cosine", "linear", "polynomial", "constant"]


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, JsonValue]:
    """One ``x-kubernetes-validations`` entry (a CEL rule checked by the API server)."""
    entry: dict[str, JsonValue] = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


class CamelModel(BaseModel):
    """Base: camelCase on the wire, snake_case in Python, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def wire(self) -> dict[str, Any]:
        """The JSON-ready dict as it appears in a Kubernetes object (camelCase, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --------------------------------------------------------------------------- constitution


class Principle(CamelModel):
    """One principle of a Constitution: a Rego v1 module defining ``violation`` for ``input``."""

    id: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Identifier of the principle (DNS label), e.g. privacy.",
    )
    description: str = Field(default="", max_length=2048, description="What the principle protects.")
    severity: Severity = Field(
        default="major",
        description="critical principles are never violated by a served decision (the runtime guard escalates).",
    )
    rego: str = Field(
        min_length=1,
        max_length=65536,
        description="A Rego v1 module that defines `violation` as a set of messages for an `input` decision.",
    )


HEX16 = r"^[0-9a-f]{16}$"
MAX_HASH_ALIASES = 16


def _unique(values: list[str]) -> list[str]:
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        raise ValueError(f"duplicate hash aliases: {', '.join(duplicates)}")
    return values


ConstitutionHash = Annotated[
    str,
    Field(
        min_length=16,
        max_length=16,
        pattern=HEX16,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.matches('^[0-9a-f]{16}$')",
                    "hashAliases: each alias is a constitution hash, 16 lowercase hex characters "
                    "(e.g. cdd01ef066bc6cf2)",
                )
            ]
        },
    ),
]
"""A constitution hash as clients send it (``constitutional_hash``): 16 lowercase hex characters."""
HashAliases = Annotated[list[ConstitutionHash], AfterValidator(_unique)]
"""Hashes accepted besides a constitution's own: each one once, at most :data:`MAX_HASH_ALIASES`."""


class ConstitutionSnapshot(CamelModel):
    """The constitution a run is evaluated under, as the operator resolved it.

    ``hash`` is computed over the principles only; ``hash_aliases`` are the other hashes a served route
    accepts in a request (the Constitution's ``spec.hashAliases``). A response always carries ``hash``.
    """

    name: str
    hash: str = Field(pattern=HEX16)
    principles: list[Principle]
    hash_aliases: HashAliases = Field(default_factory=list, max_length=MAX_HASH_ALIASES)

    @property
    def accepted_hashes(self) -> tuple[str, ...]:
        """The hashes a request may name: the current one first, then the aliases."""
        return (self.hash, *(a for a in self.hash_aliases if a != self.hash))


# --------------------------------------------------------------------------- training spec


class GeneratorSpec(CamelModel):
    """A seeded synthetic dataset whose labels come from the constitution's rules."""

    examples: int = Field(default=4000, ge=16, le=10_000_000, description="Number of labelled examples.")
    seed: int = Field(default=42, ge=0, le=2**31 - 1, description="Seed of the generator.")


class DatasetSpec(CamelModel):
    """Where the examples come from: exactly one of `generator` and `uri`."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.generator) != has(self.uri)",
                    "exactly one of dataset.generator and dataset.uri must be set",
                )
            ]
        }
    )

    generator: GeneratorSpec | None = None
    uri: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        pattern=r"^(file://|s3://|gs://|hdfs://|/).+\.(jsonl|parquet)$",
        description="A JSONL or Parquet file: a local path or a pyarrow filesystem URI.",
    )


class ModelSpec(CamelModel):
    """Component hyper-parameters (sizes). The defaults fit a CPU."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.hiddenSize % self.heads == 0", "model.hiddenSize must be a multiple of model.heads")
            ]
        }
    )

    hidden_size: int = Field(default=64, ge=8, le=8192, description="Width of hidden layers.")
    layers: int = Field(default=2, ge=1, le=48, description="Number of hidden (or transformer) layers.")
    heads: int = Field(default=4, ge=1, le=64, description="Attention heads (transformer components).")
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0, description="Dropout probability.")
    sequence_length: int = Field(
        default=96, ge=4, le=8192,
        description="Tokens per request (transformer components): context tokens and words, longer requests are cut.",
    )
    wina_sparsity: float = Field(
        default=0.5, ge=0.0, le=0.95,
        description="wina-optimization: share of each layer's input features WINA zeroes at inference "
        "(0 is the dense model).",
    )


class SchedulerSpec(CamelModel):
    """Learning-rate schedule with linear warm-up."""

    type: SchedulerType = Field(default="cosine", description="cosine, linear, polynomial or constant.")
    warmup_steps: int = Field(default=0, ge=0, le=1_000_000, description="Optimizer steps of linear warm-up.")
    power: float = Field(default=1.0, gt=0.0, le=10.0, description="Exponent of the polynomial schedule.")


class TrainingSpec(CamelModel):
    """Optimisation settings of the training loop."""

    epochs: int = Field(default=3, ge=1, le=10_000, description="Passes over the training split.")
    batch_size: int = Field(default=64, ge=1, le=65_536, description="Examples per worker per micro-batch.")
    learning_rate: float = Field(default=0.003, gt=0.0, le=10.0, description="Peak learning rate (AdamW).")
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    gradient_accumulation_steps: int = Field(
        default=1, ge=1, le=1024, description="Micro-batches accumulated per optimizer step."
    )
    max_grad_norm: float = Field(
        default=1.0, ge=0.0, le=1000.0, description="Clip the gradient norm to this value; 0 disables clipping."
    )
    mixed_precision: MixedPrecision = Field(
        default="auto",
        description="auto (bf16 on a GPU that supports it, else off), bf16, fp16 (GPU only, with a GradScaler) or off.",
    )
    gradient_checkpointing: bool = Field(default=False, description="Recompute activations in the backward pass.")
    seed: int = Field(default=42, ge=0, le=2**31 - 1, description="Seed of initialisation and data order.")


class ResourcesSpec(CamelModel):
    """Ray Train workers and what each one holds."""

    workers: int = Field(default=1, ge=1, le=1024, description="Ray Train workers (data parallel).")
    cpus_per_worker: float = Field(default=1.0, gt=0.0, le=512.0, description="CPUs reserved per worker.")
    gpus_per_worker: float = Field(default=0.0, ge=0.0, le=16.0, description="GPUs per worker; 0 trains on CPU.")


class FaultToleranceSpec(CamelModel):
    """Retries after a worker failure and how often to checkpoint."""

    max_failures: int = Field(
        default=1,
        ge=0,
        le=100,
        description="Worker-group restarts Ray Train may do; also how often the operator submits a job again "
        "after its Ray cluster forgot it.",
    )
    checkpoint_every: int = Field(default=1, ge=1, le=10_000, description="Checkpoint every N epochs.")


class GatesSpec(CamelModel):
    """Thresholds an evaluated model must meet; unset gates are not checked."""

    min_accuracy: float | None = Field(default=None, ge=0.0, le=1.0, description="Minimum accuracy on the test split.")
    min_f1: float | None = Field(default=None, ge=0.0, le=1.0, description="Minimum macro F1 on the test split.")
    min_compliance: float = Field(
        default=0.9, ge=0.0, le=1.0, description="Minimum share of predictions with no constitutional violation."
    )
    max_p99_latency_ms: float | None = Field(
        default=None, gt=0.0, le=600_000.0, description="Maximum predictor p99 latency in milliseconds."
    )


class EvaluationSpec(CamelModel):
    """How the trained model is evaluated."""

    test_fraction: float = Field(default=0.2, ge=0.05, le=0.5, description="Share of examples held out for evaluation.")
    gates: GatesSpec = Field(default_factory=GatesSpec)


class TrainRunConfig(CamelModel):
    """Everything ``python -m acgs_workloads.train --config`` needs; built by the operator."""

    run_id: str = Field(description="Ray submission id; names the artifact directory.")
    resource: str = Field(default="", description="namespace/name of the TrainingJob, for logs and metadata.")
    component: Component
    constitution: ConstitutionSnapshot
    dataset: DatasetSpec = Field(default_factory=lambda: DatasetSpec(generator=GeneratorSpec()))
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    fault_tolerance: FaultToleranceSpec = Field(default_factory=FaultToleranceSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    artifact_root: str = Field(description="Local path or pyarrow filesystem URI under which artifacts are written.")
    use_ray: bool = Field(default=True, description="Run under Ray Train; False runs the same loop in plain torch.")


# --------------------------------------------------------------------------- results


class TrainingMetrics(CamelModel):
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    loss: float | None = None
    samples_per_second: float | None = None
    p99_latency_ms: float | None = None
    p50_latency_ms: float | None = Field(default=None, description="One request through the served model.")
    p95_latency_ms: float | None = None
    held_out_accuracy: float | None = Field(
        default=None, description="Accuracy on template families never used in training (text components).")
    held_out_f1: float | None = Field(default=None, description="Macro-F1 on the held-out template families.")
    unsafe_approve_rate: float | None = Field(
        default=None, description="Share of the red-team set (clearly unacceptable requests) answered approve or "
        "approve_with_safeguards where the request's facts allow neither under the constitution.")
    over_refusal_rate: float | None = Field(
        default=None, description="Share of the benign set answered escalate or deny, or refused.")


class ViolationCount(CamelModel):
    principle: str
    count: int = Field(ge=0)


class ComplianceReport(CamelModel):
    constitution_hash: str
    score: float = Field(ge=0.0, le=1.0)
    threshold: float = Field(ge=0.0, le=1.0)
    passed: bool
    evaluated_examples: int = Field(ge=0)
    violations: list[ViolationCount] = Field(default_factory=list)


class ModelArtifact(CamelModel):
    uri: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)


class Progress(CamelModel):
    epoch: int = Field(ge=0)
    total_epochs: int = Field(ge=1)
    step: int = Field(ge=0)
    percent: float = Field(ge=0.0, le=100.0)
    loss: float | None = None


class GateResult(CamelModel):
    passed: bool
    failures: list[str] = Field(default_factory=list, description="One line per gate that failed.")


# --------------------------------------------------------------------------- events on stdout

EVENT_PREFIX = "ACGS_EVENT "


class ProgressEvent(CamelModel):
    kind: Literal["progress"] = "progress"
    progress: Progress


class ResultEvent(CamelModel):
    kind: Literal["result"] = "result"
    metrics: TrainingMetrics
    compliance: ComplianceReport
    model: ModelArtifact
    gates: GateResult
    restarts: int = Field(default=0, ge=0)


Event = Annotated[ProgressEvent | ResultEvent, Field(discriminator="kind")]
_EVENT = TypeAdapter(Event)


def format_event(event: ProgressEvent | ResultEvent | EvaluationEvent) -> str:
    """One stdout line carrying ``event``."""
    return EVENT_PREFIX + json.dumps(event.wire(), separators=(",", ":"))


def parse_events(log_text: str) -> list[ProgressEvent | ResultEvent]:
    """Every well-formed event line in ``log_text``, in order; malformed lines are skipped."""
    events: list[ProgressEvent | ResultEvent] = []
    for line in log_text.splitlines():
        start = line.find(EVENT_PREFIX)
        if start < 0:
            continue
        try:
            events.append(_EVENT.validate_json(line[start + len(EVENT_PREFIX):]))
        except ValidationError:
            continue
    return events


# --------------------------------------------------------------------------- artifact metadata

METADATA_FILE = "metadata.json"
HEX64 = r"^[0-9a-f]{64}$"


class WeightsInfo(CamelModel):
    """The weights file of an artifact, next to its ``metadata.json``."""

    file: str = Field(min_length=1)
    sha256: str = Field(pattern=HEX64)
    size_bytes: int = Field(ge=0)
    format: str


class ArtifactMetadata(CamelModel):
    """``metadata.json`` of a trained model: what it is, how it was trained, how it was judged.

    Written by the training run (``acgs_workloads.artifacts.save_artifact``); read by the operator's
    compliance gate (a ModelDeployment naming an artifact by URI) and by every Serve replica.
    """

    model_config = ConfigDict(extra="ignore")  # an older or newer writer's extra keys do not break a reader

    component: str
    constitution_hash: str
    dataset_digest: str = ""
    created_at: str = ""
    weights: WeightsInfo
    config: dict[str, Any] | None = Field(default=None, description="The TrainRunConfig of the run, as written.")
    metrics: TrainingMetrics | None = None
    compliance: ComplianceReport | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    def model_spec(self) -> ModelSpec:
        """The model sizes the weights were trained with (the run's ``config.model``)."""
        return ModelSpec.model_validate((self.config or {}).get("model", {}))

    def json_bytes(self) -> bytes:
        return json.dumps(self.wire(), indent=2, sort_keys=True).encode()

    @classmethod
    def parse(cls, data: bytes | str, where: str) -> ArtifactMetadata:
        """Parse ``metadata.json``; a ValueError names ``where`` and every bad field."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as error:
            raise ValueError(f"{where} is not ACGS artifact metadata: {describe_validation_error(error)}") from error


SIGNATURE_FILE = "model.sig"
"""The OpenSSF model-signing bundle of a model directory (it covers every other file there)."""
EVALUATIONS_DIR = "evaluations"
"""``<model dir>/evaluations/<constitution hash>.json``: re-evaluations of the model under later Constitutions."""


class Lineage(CamelModel):
    """The chain from data to served bytes: each link can be recomputed from the artifact root.

    ``datasetDigest`` is the sha256 of the examples as the training loop saw them, ``constitutionHash`` the
    rules the model was judged under, ``modelSha256`` the weights, ``metadataSha256`` the ``metadata.json``
    that carries the verdict, ``signatureSha256`` the signature bundle over both and ``signedBy`` the
    fingerprint (sha256 of the DER public key, 16 hex) of the key that signed it.
    """

    dataset_digest: str | None = None
    constitution_hash: str | None = None
    model_sha256: str | None = None
    metadata_sha256: str | None = None
    signature_sha256: str | None = None
    signed_by: str | None = None


class VerificationArgs(CamelModel):
    """The public keys a model's signature must verify with (PEM, one of them); sent to every replica."""

    public_keys: list[str] = Field(min_length=1, max_length=16)


class EvaluationRecord(CamelModel):
    """A model re-evaluated under a later Constitution (``evaluations/<hash>.json`` in its directory).

    Written by ``python -m acgs_workloads.reevaluate`` (the operator's evaluation-only Ray job) on the same
    held-out requests the training run used, labelled and judged under the new rules; signed with the
    model directory, read by the gate and by each replica, which then serve the model under that hash.
    """

    model_config = ConfigDict(extra="ignore")

    constitution_hash: str
    model_sha256: str = Field(pattern=HEX64)
    dataset_digest: str = ""
    metrics: TrainingMetrics
    compliance: ComplianceReport
    gates: GateResult
    evaluated_at: str = ""
    seconds: float = Field(default=0.0, ge=0.0)

    def json_bytes(self) -> bytes:
        return json.dumps(self.wire(), indent=2, sort_keys=True).encode()


class EvaluationEvent(CamelModel):
    """The ``ACGS_EVENT`` line an evaluation-only run prints last: where its record is and what it says."""

    kind: Literal["evaluation"] = "evaluation"
    record_uri: str
    record: EvaluationRecord


def parse_evaluation(log_text: str) -> EvaluationEvent | None:
    """The last well-formed evaluation event in ``log_text`` (an evaluation-only run's result), or None."""
    found: EvaluationEvent | None = None
    for line in log_text.splitlines():
        start = line.find(EVENT_PREFIX)
        if start < 0:
            continue
        try:
            found = EvaluationEvent.model_validate_json(line[start + len(EVENT_PREFIX):])
        except ValidationError:
            continue
    return found


# --------------------------------------------------------------------------- Serve application args

PLATFORM_APP = "acgs-platform"
"""The Serve application that answers ``/health``, ``/models`` and ``/metrics``."""
INGRESS_DEPLOYMENT = "ModelServer"
"""The ingress deployment of every model application."""
MODEL_APP_IMPORT = "acgs_workloads.serving.app:build_app"
PLATFORM_APP_IMPORT = "acgs_workloads.serving.platform:build_platform"
DEFAULT_MAX_BODY_BYTES = 1 << 20


class BatchingArgs(CamelModel):
    """Request batching (@serve.batch): the ModelDeployment's ``spec.batching``, passed on as it is."""

    max_batch_size: int = Field(default=8, ge=1, le=1024, description="Most requests per batch.")
    batch_wait_timeout_ms: float = Field(default=2.0, ge=0.0, le=10_000.0, description="Wait for a batch to fill.")

    @property
    def batch_wait_timeout_s(self) -> float:
        return self.batch_wait_timeout_ms / 1000.0


DEFAULT_MAX_ONGOING_REQUESTS = 16
DEFAULT_MAX_QUEUED_REQUESTS = 64
DEFAULT_RETRY_AFTER_SECONDS = 1


class QueueArgs(CamelModel):
    """Load shedding: the ModelDeployment's ``spec.queue``, passed on as it is.

    Each replica runs at most ``max_ongoing_requests`` requests at once (Serve's ``max_ongoing_requests``);
    at most ``max_queued_requests`` more wait in front of the replicas (Serve's ``max_queued_requests``,
    counted per Serve proxy); anything beyond is answered at once with 503 and ``Retry-After:
    retry_after_seconds``, never left to time out.
    """

    max_ongoing_requests: int = Field(
        default=DEFAULT_MAX_ONGOING_REQUESTS, ge=1, le=1024,
        description=(
            "Requests one replica works on at once (Ray Serve max_ongoing_requests). The default 16 fills two "
            "batches of the default maxBatchSize 8 (one computing, one filling); more only lets requests wait "
            "inside the replica. Keep it >= batching.maxBatchSize and >= autoscaling.targetOngoingRequests."
        ),
    )
    max_queued_requests: int = Field(
        default=DEFAULT_MAX_QUEUED_REQUESTS, ge=1, le=100_000,
        description=(
            "Requests that may wait for a free replica slot (Ray Serve max_queued_requests, per proxy); "
            "always bounded. Beyond it a request is refused at once with 503 and Retry-After."
        ),
    )
    retry_after_seconds: int = Field(
        default=DEFAULT_RETRY_AFTER_SECONDS, ge=0, le=3600,
        description="The Retry-After header (seconds) of a 503 answered because the deployment is overloaded.",
    )


class CanaryArgs(CamelModel):
    """A second model of the same component that answers ``traffic_percent`` of the requests (``spec.canary``).

    Every replica loads and verifies both models; requests are split by a deterministic stride, so each
    replica sends exactly ``traffic_percent`` of every 100 requests it answers to the canary.
    """

    model_uri: str = Field(min_length=1, max_length=2048, description="The canary's artifact directory URI.")
    model_sha256: str = Field(pattern=HEX64, description="Expected sha256 of the canary's weights.")
    traffic_percent: int = Field(ge=0, le=100, description="Share of the requests the canary answers.")


class ModelAppArgs(CamelModel):
    """The Serve config ``args`` of one ModelDeployment's application: everything a replica needs.

    Built by the operator, read by ``build_app`` in a fresh Ray worker; unknown fields are refused so a
    drifting operator fails loudly.
    """

    deployment: str = Field(
        min_length=3,
        max_length=317,
        pattern=r"^[a-z0-9][-a-z0-9.]*/[a-z0-9][-a-z0-9.]*$",
        description="namespace/name of the ModelDeployment.",
    )
    component: Component
    model_uri: str = Field(min_length=1, max_length=2048, description="Artifact directory (or weights file) URI.")
    model_sha256: str = Field(pattern=HEX64, description="Expected sha256 of the artifact's weights.")
    constitution: ConstitutionSnapshot
    runtime_guard: bool = True
    batching: BatchingArgs | None = None
    api_key_sha256: str | None = Field(default=None, pattern=HEX64, description="sha256 (hex) of the API key.")
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024, le=64 * 1024 * 1024)
    queue: QueueArgs = Field(default_factory=QueueArgs, description="Load shedding limits (spec.queue).")
    verification: VerificationArgs | None = Field(
        default=None, description="Keys the model's signature must verify with; None: the signature is not checked."
    )
    canary: CanaryArgs | None = Field(default=None, description="A second model answering a share of the requests.")

    @property
    def constitution_hash(self) -> str:
        return self.constitution.hash


class WithdrawnRoute(CamelModel):
    """The route of a ModelDeployment that is not served now, and why: the platform answers it with 503."""

    application: str = Field(min_length=1, max_length=320, description="The deployment's Serve application.")
    prefix: str = Field(min_length=2, max_length=256, description="Its route prefix.")
    reason: str = Field(min_length=1, max_length=64, description="The gate's reason, e.g. Reevaluating.")
    message: str = Field(default="", max_length=1024)
    retry_after_seconds: int | None = Field(default=None, ge=1, le=3600, description="Set while it is transient.")


class PlatformArgs(CamelModel):
    """Arguments of the platform application: the routes withdrawn from serving, with their reasons."""

    withdrawn: list[WithdrawnRoute] = Field(default_factory=list, max_length=10_000)


class InvalidAppArgs(ValueError):
    """The Serve config ``args`` do not validate; the message names every bad field."""


def describe_validation_error(error: ValidationError) -> str:
    """``field.path: message`` for each error, joined by ``; ``."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "<args>"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_model_args(args: dict[str, Any] | ModelAppArgs) -> ModelAppArgs:
    """Validate ``args`` (camelCase or snake_case); raise :class:`InvalidAppArgs` naming the fields."""
    if isinstance(args, ModelAppArgs):
        return args
    try:
        return ModelAppArgs.model_validate(args)
    except ValidationError as error:
        raise InvalidAppArgs(f"invalid ACGS model application args: {describe_validation_error(error)}") from error


def parse_platform_args(args: dict[str, Any] | None) -> PlatformArgs:
    try:
        return PlatformArgs.model_validate(args or {})
    except ValidationError as error:
        raise InvalidAppArgs(f"invalid ACGS platform args: {describe_validation_error(error)}") from error
