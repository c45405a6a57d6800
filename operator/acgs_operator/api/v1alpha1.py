"""The ACGS API, group ``acgs.io`` version ``v1alpha1``: the single source of truth for the CRDs.

Each kind is a pydantic model of its spec and status. ``acgs_operator.api.crdgen`` turns them into
CustomResourceDefinitions (``crds/*.yaml``) with defaults, CEL rules, printer columns and short
names. The spec parts the training run consumes come from ``acgs_workloads.contract`` so the operator
and the workloads agree by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from acgs_workloads.contract import (
    MAX_HASH_ALIASES,
    BatchingArgs,
    CamelModel,
    ComplianceReport,
    Component,
    DatasetSpec,
    EvaluationSpec,
    FaultToleranceSpec,
    GeneratorSpec,
    HashAliases,
    Lineage,
    ModelArtifact,
    ModelSpec,
    Principle,
    Progress,
    QueueArgs,
    ResourcesSpec,
    TrainingMetrics,
    TrainingSpec,
    cel,
)

GROUP = "acgs.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
RESERVED_ROUTES = ("/", "/health", "/models", "/metrics", "/-")


# --------------------------------------------------------------------------- shared status parts


class Condition(CamelModel):
    """A Kubernetes-style condition; `kubectl wait --for=condition=<type>` reads it."""

    model_config = ConfigDict(extra="ignore")

    type: str = Field(description="Type of the condition, e.g. Ready.")
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(default="", description="CamelCase reason of the last transition.")
    message: str = Field(default="", description="Human-readable details.")
    last_transition_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When the status last changed."
    )
    observed_generation: int | None = Field(default=None, description="The generation this condition describes.")


def conditions_field() -> Any:
    return Field(
        default_factory=list,
        description="Latest observations of the resource's state.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class LocalObjectReference(CamelModel):
    """A reference to another resource in the same namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="Name of the resource.")


class SecretKeySelector(CamelModel):
    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="Secret name.")
    key: str = Field(min_length=1, max_length=253, description="Key in the Secret's data.")


class SigningSpec(CamelModel):
    """How the operator signs a trained model (OpenSSF model-signing, elliptic-curve key, no network)."""

    key_secret_ref: SecretKeySelector = Field(
        description="Secret key holding the PEM private key (ECDSA P-256/P-384), in the TrainingJob's namespace."
    )


class RayClusterRef(CamelModel):
    """Which Ray cluster to use instead of the operator's default."""

    address: str = Field(
        min_length=1,
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
        description="Ray dashboard URL, e.g. http://raycluster-head-svc.ray:8265.",
    )


# --------------------------------------------------------------------------- Constitution


class ConstitutionSpec(CamelModel):
    """Principles as Rego v1 modules. Models are trained, gated and served under this constitution."""

    principles: list[Principle] = Field(
        min_length=1,
        max_length=64,
        description="The principles; each id appears once.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]},
    )
    hash_aliases: HashAliases = Field(
        default_factory=list,
        max_length=MAX_HASH_ALIASES,
        description="Constitution hashes that existing clients send (`constitutional_hash`), each 16 lowercase hex "
        "characters and listed once. A served route accepts a request naming the current hash or one of these, "
        "and always answers with the current hash. They do not change status.hash.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class ConstitutionStatus(CamelModel):
    model_config = ConfigDict(extra="ignore")

    phase: Literal["Pending", "Valid", "Invalid"] | None = None
    hash: str | None = Field(
        default=None, description="First 16 hex chars of sha256 over the canonical JSON of spec.principles."
    )
    principles: int | None = Field(default=None, description="Number of principles.")
    hash_aliases: list[str] | None = Field(
        default=None, description="The hashes accepted besides `hash` (spec.hashAliases of the observed generation)."
    )
    observed_generation: int | None = None
    conditions: list[Condition] = conditions_field()


# --------------------------------------------------------------------------- TrainingJob


class TrainingJobSpec(CamelModel):
    """Train and evaluate one ACGS component on Ray under a constitution."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.training.mixedPrecision != 'fp16' || self.resources.gpusPerWorker > 0",
                    "training.mixedPrecision fp16 needs resources.gpusPerWorker > 0 (use bf16 or off on CPU)",
                    ".training.mixedPrecision",
                ),
                cel(
                    "self.faultTolerance.checkpointEvery <= self.training.epochs",
                    "faultTolerance.checkpointEvery must not exceed training.epochs",
                    ".faultTolerance.checkpointEvery",
                ),
            ]
        }
    )

    component: Component = Field(
        description="Which ACGS component to train.",
        json_schema_extra={"x-kubernetes-validations": [cel("self == oldSelf", "component is immutable")]},
    )
    constitution_ref: LocalObjectReference = Field(description="The Constitution the model is evaluated under.")
    dataset: DatasetSpec = Field(
        default_factory=lambda: DatasetSpec(generator=GeneratorSpec()),
        description="Training data: a seeded generator (default) or a file URI.",
    )
    model: ModelSpec = Field(default_factory=ModelSpec, description="Model hyper-parameters (sizes).")
    training: TrainingSpec = Field(default_factory=TrainingSpec, description="Optimisation settings.")
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec, description="Ray Train workers.")
    fault_tolerance: FaultToleranceSpec = Field(
        default_factory=FaultToleranceSpec, description="Worker restarts and checkpoint interval."
    )
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec, description="Evaluation split and gates.")
    ray_cluster: RayClusterRef | None = Field(default=None, description="Override the operator's Ray cluster.")
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, le=604_800, description="Stop the job after this many seconds (reason DeadlineExceeded)."
    )
    suspend: bool = Field(default=False, description="true stops the Ray job (phase Suspended); false resumes it.")
    signing: SigningSpec | None = Field(
        default=None,
        description="Sign the model with this key; default: the operator's signing key (ACGS_SIGNING_KEY_SECRET).",
    )
    retrained_for: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{16}$",
        description=(
            "The Constitution hash a new generation is trained for: set by a ModelDeployment with "
            "onConstitutionChange: retrain (or by hand); changing it starts a new generation."
        ),
    )


class RayJobStatus(CamelModel):
    model_config = ConfigDict(extra="ignore")

    submission_id: str | None = None
    status: str | None = Field(
        default=None, description="Ray job status: PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED."
    )
    dashboard_url: str | None = None
    resubmissions: int | None = Field(
        default=None,
        description="Times this generation's job was submitted again after its Ray cluster forgot it (a head "
        "restart without GCS persistence); at most spec.faultTolerance.maxFailures. It resumes from its checkpoint.",
    )


class TrainingJobStatus(CamelModel):
    model_config = ConfigDict(extra="ignore")

    phase: Literal["Pending", "Submitted", "Running", "Evaluating", "Succeeded", "Failed", "Suspended"] | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = conditions_field()
    ray_job: RayJobStatus | None = None
    start_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    completion_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    progress: Progress | None = None
    metrics: TrainingMetrics | None = None
    compliance: ComplianceReport | None = None
    model: ModelArtifact | None = None
    restarts: int | None = None
    lineage: Lineage | None = Field(
        default=None, description="Dataset digest, constitution hash, model sha256, metadata and signature digests."
    )


# --------------------------------------------------------------------------- ModelDeployment


class ModelSource(CamelModel):
    """The model to serve: a TrainingJob's artifact, or an artifact URI pinned by its sha256."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.trainingJobRef) != has(self.uri)",
                    "exactly one of model.trainingJobRef and model.uri must be set",
                ),
                cel("!has(self.uri) || has(self.sha256)", "model.sha256 is required with model.uri", ".sha256"),
            ]
        }
    )

    training_job_ref: LocalObjectReference | None = Field(default=None, description="Serve this TrainingJob's model.")
    uri: str | None = Field(default=None, min_length=1, max_length=2048, description="Artifact directory URI.")
    sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="Expected sha256 of the artifact's weights."
    )


class AutoscalingSpec(CamelModel):
    """Ray Serve autoscaling bounds."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.minReplicas <= self.maxReplicas", "autoscaling.minReplicas must be <= maxReplicas")
            ]
        }
    )

    min_replicas: int = Field(default=1, ge=0, le=1000, description="Fewest replicas.")
    max_replicas: int = Field(default=4, ge=1, le=1000, description="Most replicas.")
    target_ongoing_requests: float = Field(default=2.0, gt=0.0, le=10_000.0, description="Target load per replica.")


class ServingResources(CamelModel):
    """What each replica holds."""

    cpus: float = Field(default=1.0, gt=0.0, le=512.0, description="CPUs per replica.")
    gpus: float = Field(default=0.0, ge=0.0, le=16.0, description="GPUs per replica; the model moves to CUDA.")


class DeploymentCompliance(CamelModel):
    """The compliance gate and the runtime guard."""

    min_score: float = Field(default=0.9, ge=0.0, le=1.0, description="Minimum evaluated compliance score to serve.")
    runtime_guard: bool = Field(
        default=True, description="Evaluate the rules on every decision; escalate instead of violating."
    )


BatchingSpec = BatchingArgs  # spec.batching is handed to the Serve replicas as it is
QueueSpec = QueueArgs  # spec.queue too: the Serve deployment options and the replica's admission limit


class AuthSpec(CamelModel):
    """API-key authentication of the routes."""

    api_key_secret_ref: SecretKeySelector = Field(description="Secret key holding the API key.")


VERIFICATION_KEYS_CONFIGMAP = "acgs-verification-keys"


class RolloutSpec(CamelModel):
    """Replacing the served model (a new TrainingJob generation, another artifact, a changed setting)."""

    max_surge_percent: int = Field(
        default=100,
        ge=0,
        le=100,
        description=(
            "Extra replicas started for the new model, as a percentage of the replicas (Serve's max_surge_percent): "
            "with a positive value the old replicas serve until the new ones are healthy (digest and signature "
            "verified), so the rollout drops no request; 0 stops the old replicas first (needs no spare CPU)."
        ),
    )


class CanarySpec(CamelModel):
    """A second model of the same component answering a share of the requests (compare KServe's
    ``canaryTrafficPercent``). It passes the same gate as ``spec.model``; while it does not, ``spec.model``
    answers every request. Promote: set ``spec.model`` to the canary's model and remove ``spec.canary``;
    roll back: remove ``spec.canary`` (or set ``trafficPercent`` to 0)."""

    model: ModelSource = Field(description="The canary model: a TrainingJob's, or an artifact pinned by sha256.")
    traffic_percent: int = Field(
        ge=0, le=100,
        description=(
            "Share of the requests the canary answers. Every replica loads both models and sends exactly this "
            "many of every 100 requests it answers to the canary, spread evenly."
        ),
    )


class VerificationSpec(CamelModel):
    """Which keys a served model's signature must verify with."""

    policy: Literal["Required", "IfKeysConfigured", "Disabled"] = Field(
        default="IfKeysConfigured",
        description=(
            "Required: no verified signature, no serving (reason SignatureInvalid), and no keys is an error. "
            "IfKeysConfigured: verify whenever keys are found. Disabled: never verify."
        ),
    )
    public_keys_ref: LocalObjectReference | None = Field(
        default=None,
        description=(
            f"ConfigMap whose *.pem entries are the accepted public keys; default: ConfigMap "
            f"{VERIFICATION_KEYS_CONFIGMAP} in the deployment's namespace."
        ),
    )


class ModelDeploymentSpec(CamelModel):
    """Serve a trained ACGS model on Ray Serve, only if it passed its compliance gate."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!(has(self.replicas) && has(self.autoscaling))",
                    "set either replicas or autoscaling, not both",
                    ".replicas",
                ),
                cel(
                    "!has(self.batching) || !has(self.queue) || self.queue.maxOngoingRequests >= "
                    "self.batching.maxBatchSize",
                    "queue.maxOngoingRequests must be >= batching.maxBatchSize (a batch cannot fill otherwise)",
                    ".queue.maxOngoingRequests",
                ),
                cel(
                    "!has(self.autoscaling) || !has(self.queue) || double(self.queue.maxOngoingRequests) >= "
                    "self.autoscaling.targetOngoingRequests",
                    "queue.maxOngoingRequests must be >= autoscaling.targetOngoingRequests",
                    ".queue.maxOngoingRequests",
                ),
                cel(
                    "!has(self.canary) || !((has(self.canary.model.trainingJobRef) && has(self.model.trainingJobRef) "
                    "&& self.canary.model.trainingJobRef.name == self.model.trainingJobRef.name) || "
                    "(has(self.canary.model.uri) && has(self.model.uri) && self.canary.model.uri == self.model.uri))",
                    "canary.model must name another model than model",
                    ".canary.model",
                ),
                cel(
                    "!has(self.onConstitutionChange) || self.onConstitutionChange != 'retrain' || "
                    "has(self.model.trainingJobRef)",
                    "onConstitutionChange retrain needs model.trainingJobRef (a model given by uri is not retrained)",
                    ".onConstitutionChange",
                ),
            ]
        }
    )

    model: ModelSource = Field(description="Which model to serve.")
    canary: CanarySpec | None = Field(
        default=None, description="A second model that answers a share of the requests once it passes the gate."
    )
    constitution_ref: LocalObjectReference = Field(description="The Constitution requests are checked against.")
    route_prefix: str | None = Field(
        default=None,
        max_length=256,
        pattern=r"^/[a-z0-9]([-a-z0-9_/]*[a-z0-9])?$",
        description="HTTP route prefix; default /<component>.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!(self in " + "[" + ", ".join(f"'{r}'" for r in RESERVED_ROUTES) + "])",
                    "routePrefix is reserved for the platform application",
                )
            ]
        },
    )
    replicas: int | None = Field(default=None, ge=0, le=1000, description="Fixed number of replicas.")
    autoscaling: AutoscalingSpec | None = Field(default=None, description="Autoscaling bounds (instead of replicas).")
    resources: ServingResources = Field(default_factory=ServingResources, description="Per-replica resources.")
    compliance: DeploymentCompliance = Field(default_factory=DeploymentCompliance, description="Gate and guard.")
    batching: BatchingSpec | None = Field(default=None, description="Batch requests to the model.")
    queue: QueueSpec = Field(
        default_factory=QueueSpec,
        description=(
            "Load shedding: requests per replica at once, requests waiting in front of the replicas; beyond "
            "them a request is answered at once with 503 and Retry-After."
        ),
    )
    auth: AuthSpec | None = Field(default=None, description="Require an API key.")
    ray_cluster: RayClusterRef | None = Field(default=None, description="Override the operator's Ray cluster.")
    rollout: RolloutSpec = Field(default_factory=RolloutSpec, description="How a new model replaces the served one.")
    verification: VerificationSpec = Field(
        default_factory=VerificationSpec, description="Signature verification of the served model."
    )
    on_constitution_change: Literal["block", "reevaluate", "retrain"] = Field(
        default="reevaluate",
        description=(
            "When the Constitution changes: block (stop serving until someone retrains), reevaluate (an "
            "evaluation-only Ray job of the same model on its held-out data under the new rules; serve again "
            "if it passes the gate) or retrain (a new TrainingJob generation)."
        ),
    )


class DeployedModel(CamelModel):
    model_config = ConfigDict(extra="ignore")

    uri: str | None = None
    sha256: str | None = None
    training_job: str | None = None
    lineage: Lineage | None = Field(default=None, description="The chain of what is served, verified by the gate.")


class RolloutStatus(CamelModel):
    """The last replacement of the served model: from which weights to which, and whether it is done."""

    model_config = ConfigDict(extra="ignore")

    from_sha256: str | None = None
    to_sha256: str | None = None
    phase: Literal["Progressing", "Complete"] | None = None
    started_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    completed_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class CanaryStatus(CamelModel):
    """The canary of ``spec.canary``: its gate, and the share of the requests it answers now."""

    model_config = ConfigDict(extra="ignore")

    phase: Literal["Pending", "Serving", "Blocked"] | None = Field(
        default=None, description="Serving: it answers trafficPercent of the requests; Blocked: it failed its gate."
    )
    traffic_percent: int | None = Field(default=None, description="Share of the requests it answers now (0 unless "
                                        "Serving).")
    model: DeployedModel | None = None
    compliance: DeploymentComplianceStatus | None = None
    message: str | None = None


class ReevaluationStatus(CamelModel):
    """The evaluation-only run of the served model under a changed Constitution."""

    model_config = ConfigDict(extra="ignore")

    constitution_hash: str | None = None
    submission_id: str | None = None
    phase: Literal["Running", "Complete", "Failed"] | None = None
    score: float | None = None
    seconds: float | None = None
    message: str | None = None


class DeploymentComplianceStatus(CamelModel):
    model_config = ConfigDict(extra="ignore")

    constitution_hash: str | None = None
    score: float | None = None
    gate: float | None = Field(default=None, description="The minScore the score was compared with.")
    reason: str | None = None


class ReplicaStatus(CamelModel):
    model_config = ConfigDict(extra="ignore")

    desired: int | None = None
    ready: int | None = None


class ModelDeploymentStatus(CamelModel):
    model_config = ConfigDict(extra="ignore")

    phase: Literal["Pending", "Blocked", "Deploying", "Ready", "Failed"] | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = conditions_field()
    url: str | None = None
    routes: list[str] = Field(default_factory=list)
    model: DeployedModel | None = None
    compliance: DeploymentComplianceStatus | None = None
    replicas: ReplicaStatus | None = None
    reevaluation: ReevaluationStatus | None = None
    rollout: RolloutStatus | None = None
    canary: CanaryStatus | None = None


# --------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class Kind:
    """Everything the CRD generator needs to know about one kind."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: tuple[PrinterColumn, ...] = field(default_factory=tuple)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


def _age() -> PrinterColumn:
    return PrinterColumn("Age", ".metadata.creationTimestamp", "date")


CONSTITUTION = Kind(
    kind="Constitution",
    plural="constitutions",
    short_names=("constitution", "cst"),
    spec=ConstitutionSpec,
    status=ConstitutionStatus,
    description="A set of principles (Rego v1 modules) that ACGS models are trained, gated and served under.",
    columns=(
        PrinterColumn("Hash", ".status.hash", description="Constitution hash"),
        PrinterColumn("Principles", ".status.principles", "integer"),
        PrinterColumn("Valid", '.status.conditions[?(@.type=="Valid")].status'),
        PrinterColumn("Aliases", ".status.hashAliases", description="Hashes accepted besides Hash", priority=1),
        _age(),
    ),
)

TRAINING_JOB = Kind(
    kind="TrainingJob",
    plural="trainingjobs",
    short_names=("tj",),
    spec=TrainingJobSpec,
    status=TrainingJobStatus,
    description="Trains and evaluates one ACGS component as a Ray Train job, with constitutional compliance.",
    columns=(
        PrinterColumn("Component", ".spec.component"),
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("Progress", ".status.progress.percent", "number"),
        PrinterColumn("Accuracy", ".status.metrics.accuracy", "number"),
        PrinterColumn("Compliance", ".status.compliance.score", "number"),
        PrinterColumn("Ray Job", ".status.rayJob.submissionId", priority=1),
        PrinterColumn("Digest", ".status.model.sha256", priority=1),
        _age(),
    ),
)

MODEL_DEPLOYMENT = Kind(
    kind="ModelDeployment",
    plural="modeldeployments",
    short_names=("md",),
    spec=ModelDeploymentSpec,
    status=ModelDeploymentStatus,
    description="Serves a trained ACGS model on Ray Serve when it passes its constitutional compliance gate.",
    columns=(
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("URL", ".status.url"),
        PrinterColumn("Score", ".status.compliance.score", "number"),
        PrinterColumn("Reason", ".status.compliance.reason"),
        PrinterColumn("Ready", ".status.replicas.ready", "integer", priority=1),
        PrinterColumn("Digest", ".status.model.sha256", description="sha256 of the served weights", priority=1),
        PrinterColumn("Signed By", ".status.model.lineage.signedBy", priority=1),
        PrinterColumn("Canary", ".status.canary.trafficPercent", "integer",
                      description="Share of the requests the canary answers", priority=1),
        _age(),
    ),
)

KINDS: tuple[Kind, ...] = (CONSTITUTION, TRAINING_JOB, MODEL_DEPLOYMENT)
