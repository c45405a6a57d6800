"""WINA on a trained transformer: accuracy vs sparsity, and the measured MLP speed-up.

    python benchmarks/bench_wina.py [--examples 12000] [--epochs 4] [--hidden 64] [--device cpu|cuda]

Trains the wina-optimization transformer (the text governance task read as token ids) through the standalone
training loop, then applies WINA (training-free) at sparsity 0.25/0.5/0.75 (and ``--sparsity``, the spec's
``model.winaSparsity``) and reports test accuracy for per-token selection (masked reference) and batch-shared
selection, plus the MLP time dense vs WINA with gathered columns at the trained size and at larger widths
(random weights: speed only).
"""

from __future__ import annotations

import argparse
import json
import tempfile

import numpy as np
import torch

from acgs_workloads.components import get
from acgs_workloads.components.models import TransformerBlock
from acgs_workloads.components.task import build_task, run_split
from acgs_workloads.components.wina import SPARSITIES, accuracy_vs_sparsity, block_inputs, mlp_speedup
from acgs_workloads.constitution import default_constitution
from acgs_workloads.contract import TrainRunConfig
from acgs_workloads.training import run_training


def trained_model(examples: int, epochs: int, hidden: int, sparsity: float
                  ) -> tuple[torch.nn.Module, np.ndarray, np.ndarray, dict]:
    root = tempfile.mkdtemp(prefix="acgs-bench-wina-")
    cfg = TrainRunConfig.model_validate({
        "runId": "bench-wina", "component": "wina-optimization", "constitution": default_constitution().wire(),
        "dataset": {"generator": {"examples": examples, "seed": 42}},
        "model": {"hiddenSize": hidden, "heads": 4, "layers": 2, "sequenceLength": 96, "dropout": 0.0,
                  "winaSparsity": sparsity},
        "training": {"epochs": epochs, "batchSize": 64, "learningRate": 0.003},
        "artifactRoot": root, "useRay": False,
    })
    outcome = run_training(build_task, cfg, emit_events=False)
    component = get(cfg.component)
    model = component.build_model(cfg.model)
    model.load_state_dict(outcome.state_dict)
    model.eval()
    _, test = run_split(cfg)
    info = {"finalLoss": outcome.final_loss, "trainSamplesPerSecond": outcome.samples_per_second,
            "trainWallSeconds": outcome.wall_seconds}
    return model, component.inputs(test, cfg.model)["x"], test["label"], info


def speed_at_width(hidden: int, tokens: int, device: str, repeats: int) -> dict[str, dict]:
    torch.manual_seed(0)
    block = TransformerBlock(hidden, 4, 0.0).to(device).eval()
    x = torch.randn(tokens, hidden, device=device)
    return {
        "batchShared": mlp_speedup(block, x, mode="shared", repeats=repeats),
        "singleTokenGather": mlp_speedup(block, x[:1], mode="gather", repeats=repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=12000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--sparsity", type=float, default=0.5, help="model.winaSparsity (also measured)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--widths", type=int, nargs="*", default=[256, 1024])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--speed-only", action="store_true", help="skip training; time the MLP at --widths only")
    args = parser.parse_args()
    if args.speed_only:
        widths = {str(w): speed_at_width(w, 2048, args.device, args.repeats) for w in args.widths}
        print(json.dumps({"mlpSpeedupByWidth": widths, "device": args.device,
                          "torchThreads": torch.get_num_threads()}, indent=2))
        return
    model, tokens, labels, info = trained_model(args.examples, args.epochs, args.hidden, args.sparsity)
    hidden = block_inputs(model, tokens)
    sparsities = sorted({0.0, *SPARSITIES, args.sparsity})
    classes = len(get("wina-optimization").classes)
    report = {
        "training": info,
        "testExamples": len(labels),
        "accuracyPerToken": accuracy_vs_sparsity(model, tokens, labels, sparsities, mode="mask", classes=classes),
        "accuracyBatchShared": accuracy_vs_sparsity(model, tokens, labels, sparsities, mode="shared",
                                                    classes=classes),
        "mlpSpeedupTrainedModel": {
            "hidden": args.hidden,
            "batchShared": mlp_speedup(model.blocks[0], hidden, mode="shared", repeats=args.repeats),  # type: ignore[arg-type,index]
            "singleTokenGather": mlp_speedup(model.blocks[0], hidden[:1], mode="gather", repeats=args.repeats),  # type: ignore[arg-type,index]
        },
        "mlpSpeedupByWidth": {str(w): speed_at_width(w, 2048, args.device, args.repeats) for w in args.widths},
        "sparsities": sparsities,
        "device": args.device,
        "torchThreads": torch.get_num_threads(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
