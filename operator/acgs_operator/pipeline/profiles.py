"""Profiles scale the samples (pure: samples in, patched copies out).

``full`` runs the samples as written. ``small`` shrinks datasets and epochs for the CI end-to-end test; every
component keeps its sample's gates (the default minCompliance 0.9). Measured with plain torch on one thread of
the 2-core machine at the ``small`` sizes, every component passes it with a margin: see the samples' comments
for the figures (at 8,000 x 3 the transformers' compliance fell to 0.90-0.93 once the generator wrote short,
change and everyday requests, so they train on 12,000 x 3; policy-governance on 16,000 x 4).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from acgs_operator.pipeline.samples import Manifest, Samples, component_of, deployment_component


@dataclass(frozen=True)
class Scale:
    examples: int
    epochs: int


PROFILES: dict[str, Mapping[str, Scale]] = {
    "full": {},
    "small": {
        "constitutional-ai": Scale(examples=12000, epochs=3),
        "policy-governance": Scale(examples=16000, epochs=4),
        "multi-agent-coordination": Scale(examples=20000, epochs=2),
        "performance-optimization": Scale(examples=10000, epochs=8),
        "transformer-efficiency": Scale(examples=12000, epochs=3),
        "wina-optimization": Scale(examples=12000, epochs=3),
    },
}


def scale_job(job: Manifest, scale: Scale | None) -> Manifest:
    """A copy of ``job`` with the generator's example count and the epochs set (pure)."""
    if scale is None:
        return job
    spec = dict(job["spec"])
    dataset = dict(spec.get("dataset") or {})
    generator = dict(dataset.get("generator") or {})
    generator["examples"] = scale.examples
    dataset = {"generator": generator}  # a uri dataset is replaced by the generator at this size
    training = dict(spec.get("training") or {})
    training["epochs"] = scale.epochs
    faults = dict(spec.get("faultTolerance") or {})
    if faults.get("checkpointEvery", 1) > scale.epochs:
        faults["checkpointEvery"] = scale.epochs
    spec.update(dataset=dataset, training=training)
    if faults:
        spec["faultTolerance"] = faults
    return {**job, "spec": spec}


def apply_profile(samples: Samples, profile: str) -> Samples:
    """The samples scaled by ``profile`` (a new object; ``samples`` is left as it was)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    scales = PROFILES[profile]
    base = samples.copy()
    jobs = [scale_job(job, scales.get(component_of(job))) for job in base.training_jobs]
    return Samples(base.constitution, jobs, base.deployments)


def select(samples: Samples, components: Iterable[str] | None) -> Samples:
    """Only the TrainingJobs of ``components`` and the ModelDeployments that serve them (pure)."""
    if not components:
        return samples
    wanted = set(components)
    unknown = wanted - {component_of(j) for j in samples.training_jobs}
    if unknown:
        raise ValueError(f"no sample TrainingJob for {', '.join(sorted(unknown))}")
    jobs = [j for j in samples.training_jobs if component_of(j) in wanted]
    deployments = [d for d in samples.deployments if deployment_component(d, samples.training_jobs) in wanted]
    return Samples(samples.constitution, jobs, deployments)
