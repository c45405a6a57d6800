"""Transformer efficiency: tokens/s and peak memory with mixed precision and gradient checkpointing on/off.

Trains the ``transformer-efficiency`` component (the text governance task read as token ids, under the default
Constitution; a small transformer of this file over random tokens when the components are unavailable) through
the standalone training loop, one configuration per fresh subprocess so each peak-memory figure is its own: the
peak RSS (``VmHWM``, reset just before training) minus the RSS before training, i.e. parameters + gradients +
optimizer state + activations. On a CUDA device the peak allocated CUDA memory is reported as well. Tokens/s
is the median over the epochs after the first and counts the requests' tokens, not their padding.

    python benchmarks/bench_transformer_efficiency.py [--examples 1024 --seq 96 --hidden 128 --layers 4]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the toy task lives in tests/support (not shipped)

from common import load_average, peak_rss_mib, report_dir, reset_peak_rss, rss_mib, steady, write_json

RESULT_PREFIX = "BENCH_RESULT "


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=640)
    parser.add_argument("--seq", type=int, default=96)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (cpusPerWorker)")
    parser.add_argument("--gpu", action="store_true", help="train on CUDA (adds fp16)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser


# --------------------------------------------------------------------------- the fallback model


def _fallback_build_task(cfg: Any) -> Any:
    """A small transformer classifier of our own over seeded random tokens (when components are missing)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    from acgs_workloads.training import TrainTask

    m = cfg.model

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gradient_checkpointing = False
            self.embed = torch.nn.Embedding(128, m.hidden_size)
            self.blocks = torch.nn.ModuleList(
                torch.nn.TransformerEncoderLayer(m.hidden_size, m.heads, 4 * m.hidden_size, m.dropout, batch_first=True)
                for _ in range(m.layers)
            )
            self.head = torch.nn.Linear(m.hidden_size, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.embed(x)
            for block in self.blocks:
                use = self.gradient_checkpointing and self.training
                h = checkpoint(block, h, use_reentrant=False) if use else block(h)
            return self.head(h[:, 0])

    gen = torch.Generator().manual_seed(cfg.dataset.generator.seed)
    x = torch.randint(1, 128, (cfg.dataset.generator.examples, m.sequence_length), generator=gen)
    y = (x[:, :4].sum(dim=1) % 4).long()

    def loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(model(batch["x"]).float(), batch["y"])

    data = {"x": x, "y": y}
    return TrainTask(model_factory=Tiny, train_data=data, loss_fn=loss, supports_gradient_checkpointing=True)


def _build_task(cfg: Any) -> tuple[Any, str]:
    try:
        from acgs_workloads.components.task import build_task

        return build_task(cfg), "components:transformer-efficiency"
    except ImportError as exc:
        print(f"components unavailable ({exc}); using the benchmark's own transformer", file=sys.stderr)
        return _fallback_build_task(cfg), "benchmark:tiny-transformer"


# --------------------------------------------------------------------------- one configuration (child)


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    import tempfile

    import torch

    from acgs_workloads.constitution import default_constitution
    from acgs_workloads.training import run_training
    from tests.support.toy import toy_config

    with tempfile.TemporaryDirectory(prefix="acgs-bench-") as root:
        cfg = toy_config(
            root,
            "bench",
            model={"hidden_size": spec["hidden"], "layers": spec["layers"], "heads": spec["heads"],
                   "sequence_length": spec["seq"], "dropout": 0.1},
            dataset={"generator": {"examples": spec["examples"], "seed": 11}},
            training={"epochs": spec["epochs"], "batch_size": spec["batch_size"], "learning_rate": 0.001,
                      "mixed_precision": spec["precision"], "gradient_checkpointing": spec["checkpointing"]},
            resources={"cpus_per_worker": spec["threads"], "gpus_per_worker": 1 if spec["gpu"] else 0},
            fault_tolerance={"checkpoint_every": 10_000},
        ).model_copy(update={"component": "transformer-efficiency", "constitution": default_constitution()})
        task, source = _build_task(cfg)
        tokens_per_example = float((task.train_data["x"] != 0).sum(dim=1).float().mean())  # not the padding
        warm_up(task, spec)  # load kernels and libraries first: they are not training memory
        gc.collect()
        before = rss_mib()
        reset_ok = reset_peak_rss()
        if spec["gpu"]:
            torch.cuda.reset_peak_memory_stats()
        outcome = run_training(lambda _cfg: task, cfg, emit_events=False)
        peak = peak_rss_mib()
    result = {
        "precision": outcome.mixed_precision,
        "checkpointing": spec["checkpointing"],
        "source": source,
        "tokens_per_example": tokens_per_example,
        "train_examples": int(task.num_examples),
        "epoch_tokens_per_s": [s * tokens_per_example for s in outcome.epoch_samples_per_second],
        "tokens_per_s": steady(outcome.epoch_samples_per_second) * tokens_per_example,
        "peak_rss_mib": peak,
        "rss_before_mib": before,
        "peak_training_mib": peak - before if reset_ok else float("nan"),
        "peak_reset": reset_ok,
        "final_loss": outcome.final_loss,
        "parameters": sum(v.numel() for v in outcome.state_dict.values()),
    }
    if spec["gpu"]:
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
        result["device_name"] = torch.cuda.get_device_name()
    result["model_flops_per_token"] = model_flops_per_token(result["parameters"], spec)
    result["model_tflops"] = result["tokens_per_s"] * result["model_flops_per_token"] / 1e12
    return result


def model_flops_per_token(parameters: int, spec: dict[str, Any]) -> float:
    """Training FLOPs per token: 6 per parameter (forward + backward) plus attention's 12 * layers * seq * hidden.

    Recomputation under gradient checkpointing is not counted (model FLOPs, as MFU is usually defined).
    """
    return 6.0 * parameters + 12.0 * spec["layers"] * spec["seq"] * spec["hidden"]


def measure_matmul_peak(size: int = 8192, repeats: int = 10) -> dict[str, float]:
    """Dense matrix-product TFLOP/s of this GPU in bf16, fp16 and fp32, measured now (the MFU denominators)."""
    import torch

    peaks = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16), ("off", torch.float32)):
        a = torch.randn(size, size, device="cuda", dtype=dtype)
        b = torch.randn(size, size, device="cuda", dtype=dtype)
        for _ in range(3):
            a @ b
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            a @ b
        end.record()
        torch.cuda.synchronize()
        seconds = start.elapsed_time(end) / 1000 / repeats
        peaks[name] = 2 * size**3 / seconds / 1e12
        del a, b
    return peaks


def warm_up(task: Any, spec: dict[str, Any]) -> None:
    """One forward/backward pass of a throwaway model in the measured configuration."""
    import torch

    from acgs_workloads.training.precision import autocast

    device = torch.device("cuda" if spec["gpu"] else "cpu")
    model = task.model_factory().to(device)
    model.gradient_checkpointing = spec["checkpointing"]
    batch = {k: v[: spec["batch_size"]].to(device) for k, v in task.train_data.items()}
    precision = "off" if spec["precision"] == "auto" else spec["precision"]
    with autocast(precision, device):
        loss = task.loss_fn(model, batch)
    loss.backward()
    del model, batch, loss


# --------------------------------------------------------------------------- driver


def configurations(gpu: bool) -> list[tuple[str, bool]]:
    precisions = ["off", "bf16", "fp16"] if gpu else ["off", "bf16"]
    return [(p, c) for p in precisions for c in (False, True)]


def main() -> None:
    args = _parser().parse_args()
    if args.child:
        spec = json.loads(args.child)
        outcome = measure_matmul_peak() if spec.get("matmul_peak") else run_child(spec)
        print(RESULT_PREFIX + json.dumps(outcome), flush=True)
        return
    base = {k: getattr(args, k) for k in ("examples", "seq", "hidden", "layers", "heads", "batch_size", "epochs",
                                           "threads", "gpu")}
    results = []
    peaks = _in_child({"matmul_peak": True}) if args.gpu else {}
    if peaks:
        print("matrix-product peak measured now (TFLOP/s): " + ", ".join(f"{k} {v:,.0f}" for k, v in peaks.items()))
    for precision, checkpointing in configurations(args.gpu):
        spec = {**base, "precision": precision, "checkpointing": checkpointing}
        result = _in_child(spec)
        if peaks:
            result["mfu"] = result["model_tflops"] / peaks[result["precision"]]
        results.append(result)
        extra = f"  peak CUDA {result['peak_cuda_mib']:.1f} MiB" if "peak_cuda_mib" in result else ""
        extra += f"  {result['model_tflops']:.2f} model TFLOP/s" + (f" MFU {result['mfu']:.1%}" if peaks else "")
        print(f"precision={precision:<4} checkpointing={checkpointing!s:<5} tokens/s {result['tokens_per_s']:>10,.0f}  "
              f"peak training memory {result['peak_training_mib']:7.1f} MiB (peak RSS {result['peak_rss_mib']:.0f} MiB)"
              f"{extra}  final loss {result['final_loss']:.3f}", flush=True)
    summary = {"config": base, "load_average_1m": load_average(), "matmul_peak_tflops": peaks, "results": results}
    name = "transformer_efficiency_gpu" if args.gpu else "transformer_efficiency"
    path = write_json(f"{name}.json", summary)
    print(f"-> {path}")
    plot(summary, report_dir() / f"{name}.png")


def _in_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter (its own peak memory) and return its result."""
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                          text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"configuration {spec} failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX):])
    return result


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = summary["results"]
    labels = [f"{r['precision']}\n{'ckpt' if r['checkpointing'] else 'no ckpt'}" for r in results]
    memory_key = "peak_cuda_mib" if "peak_cuda_mib" in results[0] else "peak_training_mib"
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(labels, [r["tokens_per_s"] for r in results], color="tab:blue")
    left.set(ylabel="tokens/s", title="training throughput")
    right.bar(labels, [r[memory_key] for r in results], color="tab:orange")
    right.set(ylabel="MiB", title="peak training memory" + (" (CUDA)" if memory_key == "peak_cuda_mib" else " (RSS)"))
    c = summary["config"]
    fig.suptitle(f"transformer {c['layers']}x{c['hidden']}, seq {c['seq']}, batch {c['batch_size']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
