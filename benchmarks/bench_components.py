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

import torch  # before regopy: see tests/conftest.py

from acgs_workloads.constitution import default_constitution
from acgs_workloads.contract import COMPONENTS, DatasetSpec, GeneratorSpec, TrainingSpec, TrainRunConfig
from acgs_workloads.train import run

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ray", action="store_true", help="train under Ray Train (needs RAY_ADDRESS or starts one)")
    parser.add_argument("--examples", type=int, default=None, help="override the generator's example count")
    parser.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    parser.add_argument("--components", nargs="+", default=list(COMPONENTS))
    parser.add_argument("--gpu", action="store_true", help="train on one CUDA device (plain torch)")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp16", "off"], default=None,
                        help="override training.mixedPrecision")
    parser.add_argument("--out", default="components.json", help="file name under reports/benchmarks/")
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
        if args.precision:
            cfg.training.mixed_precision = args.precision
        if args.gpu:
            cfg.resources.gpus_per_worker = 1
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
            "samples_per_second": result.metrics.samples_per_second,
            "precision": cfg.training.mixed_precision,
            "device": torch.cuda.get_device_name() if args.gpu else "cpu",
            "seconds": round(time.monotonic() - start, 1),
        })
    print("\n| component | device | precision | accuracy | macro F1 | compliance | gate (minCompliance 0.9) "
          "| train samples/s | wall s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        gate = "passed" if r["gate_passed"] else "failed"
        print(f"| {r['component']} | {r['device']} | {r['precision']} | {r['accuracy']:.3f} | {r['f1']:.3f} | "
              f"{r['compliance']:.3f} | {gate} | {r['samples_per_second'] or 0:,.0f} | {r['seconds']} |")
    out = ROOT / "reports" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    (out / args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
