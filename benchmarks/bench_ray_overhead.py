"""Ray Train overhead: the same model and data through ``TorchTrainer`` (1 worker) and plain torch.

Separates the two costs: steady-state throughput (median samples/s of the epochs after the first: of the training
steps alone, and end to end per epoch including Ray's per-epoch ``report``) and fixed start-up seconds (wall time
outside the epochs: worker-group start, process group, final checkpoint, teardown). Runs alternate torch / Ray
``--repeats`` times so background load hits both alike. Prints the figures and writes JSON + PNG to reports/benchmarks/.

    python benchmarks/bench_ray_overhead.py [--examples 20000 --epochs 4 --hidden 256 --repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the toy task lives in tests/support (not shipped)

from common import load_average, report_dir, steady, write_json

from acgs_workloads.contract import TrainRunConfig
from acgs_workloads.training import TrainOutcome, run_training
from tests.support.toy import build_toy_task, pickle_by_value, toy_config

pickle_by_value()  # Ray Train workers cannot import `tests.*` by name


def make_cfg(root: str, run_id: str, args: argparse.Namespace, use_ray: bool) -> TrainRunConfig:
    return toy_config(
        root,
        run_id,
        use_ray=use_ray,
        model={"hidden_size": args.hidden, "layers": args.layers, "dropout": 0.1},
        dataset={"generator": {"examples": args.examples, "seed": 7}},
        training={"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": 0.003},
        resources={"workers": 1, "cpus_per_worker": 1},
        fault_tolerance={"checkpoint_every": args.epochs},
    )


def measure(outcome: TrainOutcome) -> dict[str, Any]:
    samples = [r * s for r, s in zip(outcome.epoch_samples_per_second, outcome.epoch_seconds, strict=True)]
    end_to_end = [n / w for n, w in zip(samples, outcome.epoch_wall_seconds, strict=True)]
    return {
        "wall_s": outcome.wall_seconds,
        "epoch_s": outcome.epoch_seconds,
        "epoch_wall_s": outcome.epoch_wall_seconds,
        "epoch_samples_per_s": outcome.epoch_samples_per_second,
        "steady_samples_per_s": steady(outcome.epoch_samples_per_second),
        "steady_end_to_end_samples_per_s": steady(end_to_end),
        "fixed_s": outcome.wall_seconds - sum(outcome.epoch_wall_seconds),
        "final_loss": outcome.final_loss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import ray

    init_started = time.perf_counter()
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_init_s = time.perf_counter() - init_started

    runs: dict[str, list[dict[str, Any]]] = {"torch": [], "ray": []}
    with tempfile.TemporaryDirectory(prefix="acgs-bench-") as root:
        for i in range(args.repeats):
            for mode in ("torch", "ray"):
                cfg = make_cfg(root, f"bench-{mode}-{i}", args, use_ray=mode == "ray")
                outcome = run_training(build_toy_task, cfg, emit_events=False)
                runs[mode].append(measure(outcome))
                r = runs[mode][-1]
                print(f"[{mode} #{i}] wall {r['wall_s']:.2f}s  epochs {[round(s, 2) for s in r['epoch_s']]}  "
                      f"steady {r['steady_samples_per_s']:.0f} samples/s "
                      f"(end to end {r['steady_end_to_end_samples_per_s']:.0f})  fixed {r['fixed_s']:.2f}s", flush=True)
    ray.shutdown()

    torch_sps = statistics.median(r["steady_samples_per_s"] for r in runs["torch"])
    ray_sps = statistics.median(r["steady_samples_per_s"] for r in runs["ray"])
    torch_e2e = statistics.median(r["steady_end_to_end_samples_per_s"] for r in runs["torch"])
    ray_e2e = statistics.median(r["steady_end_to_end_samples_per_s"] for r in runs["ray"])
    torch_fixed = statistics.median(r["fixed_s"] for r in runs["torch"])
    ray_fixed = statistics.median(r["fixed_s"] for r in runs["ray"])
    summary = {
        "config": vars(args),
        "load_average_1m": load_average(),
        "ray_init_s": ray_init_s,
        "ray_address": address or "local (ray.init)",
        "torch_steady_samples_per_s": torch_sps,
        "ray_steady_samples_per_s": ray_sps,
        "steady_overhead_ratio": torch_sps / ray_sps,
        # each torch run and the Ray run right after it see about the same background load
        "paired_overhead_ratios": [t["steady_samples_per_s"] / r["steady_samples_per_s"]
                                   for t, r in zip(runs["torch"], runs["ray"], strict=True)],
        "torch_end_to_end_samples_per_s": torch_e2e,
        "ray_end_to_end_samples_per_s": ray_e2e,
        "end_to_end_overhead_ratio": torch_e2e / ray_e2e,
        "torch_fixed_s": torch_fixed,
        "ray_fixed_s": ray_fixed,
        "ray_startup_overhead_s": ray_fixed - torch_fixed,
        "torch_wall_s": statistics.median(r["wall_s"] for r in runs["torch"]),
        "ray_wall_s": statistics.median(r["wall_s"] for r in runs["ray"]),
        "runs": runs,
    }
    path = write_json("ray_overhead.json", summary)
    print()
    print(f"steady state : torch {torch_sps:,.0f} samples/s, Ray Train {ray_sps:,.0f} samples/s "
          f"-> overhead x{summary['steady_overhead_ratio']:.3f} (goal <= 1.05); back-to-back pairs "
          f"{', '.join(f'x{v:.3f}' for v in summary['paired_overhead_ratios'])}")
    print(f"per epoch    : torch {torch_e2e:,.0f} samples/s, Ray Train {ray_e2e:,.0f} samples/s with the epoch's "
          f"report -> overhead x{summary['end_to_end_overhead_ratio']:.3f}")
    print(f"fixed seconds: torch {torch_fixed:.2f}s, Ray Train {ray_fixed:.2f}s "
          f"-> Ray start-up/teardown {summary['ray_startup_overhead_s']:.2f}s per run "
          f"(+ ray.init {ray_init_s:.2f}s once)")
    print(f"wall         : torch {summary['torch_wall_s']:.2f}s, Ray Train {summary['ray_wall_s']:.2f}s")
    print(f"load average : {summary['load_average_1m']:.2f}  -> {path}")
    plot(summary, report_dir() / "ray_overhead.png")


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for mode, color in (("torch", "tab:blue"), ("ray", "tab:orange")):
        for i, run in enumerate(summary["runs"][mode]):
            left.plot(range(1, len(run["epoch_samples_per_s"]) + 1), run["epoch_samples_per_s"], marker="o",
                      color=color, alpha=0.8, label=f"{mode} #{i}")
    left.set(xlabel="epoch", ylabel="samples/s", title="throughput per epoch (1 worker)")
    left.legend()
    labels = ["torch", "Ray Train"]
    trained = [summary["torch_wall_s"] - summary["torch_fixed_s"], summary["ray_wall_s"] - summary["ray_fixed_s"]]
    # (epochs include their end-of-epoch report; "fixed" is everything outside the epochs)
    fixed = [summary["torch_fixed_s"], summary["ray_fixed_s"]]
    right.bar(labels, trained, label="training epochs")
    right.bar(labels, fixed, bottom=trained, label="fixed (start-up, checkpoints, teardown)")
    right.set(ylabel="seconds", title=f"wall time (steady overhead x{summary['steady_overhead_ratio']:.3f})")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot         : {path}")


if __name__ == "__main__":
    main()
