"""Generator throughput per component and batched vs per-decision Rego evaluation.

    python benchmarks/bench_generators.py [--examples 200000] [--decisions 2000]

Prints one JSON object: examples/s per component (best of 3, labelled text examples for the text
components), the cold cost of the Constitution's decision table (its Rego on every fact combination, once
per constitution and component in a process), the rate of turning text into hashed n-gram ids, and
decisions/s of the constitution evaluator (batched: one engine query per chunk; single: one per decision).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from acgs_workloads.components import get, names
from acgs_workloads.constitution import ConstitutionEvaluator, default_constitution
from acgs_workloads.contract import ModelSpec


def generator_rates(examples: int, repeats: int = 3) -> dict[str, float]:
    rates: dict[str, float] = {}
    for name in names():
        component = get(name)
        component.generate(1000, 0, ModelSpec())  # warm-up
        best = float("inf")
        for seed in range(repeats):
            start = time.perf_counter()
            component.generate(examples, seed, ModelSpec())
            best = min(best, time.perf_counter() - start)
        rates[name] = examples / best
    return rates


def text_costs(examples: int) -> dict[str, float]:
    """Cold decision-table seconds (cache cleared) and n-gram featurisation rate (texts/s)."""
    from acgs_workloads.components import labels, language

    constitution = default_constitution()
    labels._CACHE.clear()
    start = time.perf_counter()
    labels.decision_table(constitution, "constitutional-ai")
    table = time.perf_counter() - start
    texts = list(get("constitutional-ai").generate(min(examples, 20_000), 5, ModelSpec())["text"])
    start = time.perf_counter()
    language.featurize(texts)
    featurize = time.perf_counter() - start
    return {"decisionTableSeconds": round(table, 3), "featurizeTextsPerSecond": round(len(texts) / featurize)}


def rego_rates(decisions: int) -> dict[str, float]:
    evaluator = ConstitutionEvaluator(default_constitution())
    inputs = []
    per = max(1, decisions // len(names()))
    for name in names():
        component = get(name)
        cols = component.generate(per, 1, ModelSpec())
        inputs += component.decisions(cols, cols["label"][::-1].copy())
    start = time.perf_counter()
    evaluator.evaluate(inputs)
    batched = time.perf_counter() - start
    sample = inputs[: min(200, len(inputs))]
    start = time.perf_counter()
    for decision in sample:
        evaluator.evaluate_one(decision)
    single = time.perf_counter() - start
    return {
        "decisions": len(inputs),
        "principles": len(evaluator.principles),
        "batchedDecisionsPerSecond": len(inputs) / batched,
        "singleDecisionsPerSecond": len(sample) / single,
        "chunkSize": evaluator.chunk_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=200_000)
    parser.add_argument("--decisions", type=int, default=2000)
    args = parser.parse_args()
    report = {
        "examples": args.examples,
        "generatorExamplesPerSecond": {k: round(v) for k, v in generator_rates(args.examples).items()},
        "text": text_costs(args.examples),
        "rego": {k: round(v, 1) if isinstance(v, float) else v for k, v in rego_rates(args.decisions).items()},
        "torchThreads": torch.get_num_threads(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
