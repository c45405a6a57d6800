"""Train and evaluate every component at its default settings; print the README's table.

    python benchmarks/bench_components.py [--ray] [--examples N] [--epochs N]

Each run goes through the real entry point code (``acgs_workloads.train.run``) under the default
constitution: generated data, the one training loop (plain torch, or Ray Train with ``--ray``), the
held-out evaluation with Rego compliance, and the artifact. Writes reports/benchmarks/components.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch  # noqa: F401  (before regopy: see tests/conftest.py)

from acgs_workloads.config import COMPONENTS, DatasetSpec, GeneratorSpec, TrainingSpec, TrainRunConfig
from acgs_workloads.constitution import default_constitution
from acgs_workloads.train import run

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ray", action="store_true", help="train under Ray Train (needs RAY_ADDRESS or starts one)")
    parser.add_argument("--examples", type=int, default=None, help="override the generator's example count")
    parser.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    parser.add_argument("--components", nargs="+", default=list(COMPONENTS))
    args = parser.parse_args()
    constitution = default_constitution()
    root = tempfile.mkdtemp(prefix="acgs-components-")
    rows = []
    for component in args.components:
        cfg = TrainRunConfig(run_id=f"defaults-{component}", component=component, constitution=constitution,
                             artifact_root=root, use_ray=args.ray)
        if args.examples:
            cfg.dataset = DatasetSpec(generator=GeneratorSpec(examples=args.examples))
        if args.epochs:
            cfg.training = TrainingSpec(epochs=args.epochs)
        start = time.monotonic()
        result = run(cfg)
        rows.append({
            "component": component,
            "accuracy": result.metrics.accuracy,
            "f1": result.metrics.f1,
            "compliance": result.compliance.score,
            "gate_passed": result.gates.passed,
            "gate_failures": result.gates.failures,
            "p99_latency_ms": result.metrics.p99_latency_ms,
            "seconds": round(time.monotonic() - start, 1),
        })
    print("\n| component | accuracy | macro F1 | compliance | gate (minCompliance 0.9) | wall s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        gate = "passed" if r["gate_passed"] else "failed"
        print(f"| {r['component']} | {r['accuracy']:.3f} | {r['f1']:.3f} | {r['compliance']:.3f} | {gate} | "
              f"{r['seconds']} |")
    out = ROOT / "reports" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    (out / "components.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
