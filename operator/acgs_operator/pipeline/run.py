"""The whole pipeline: stack -> constitution -> six TrainingJobs -> three ModelDeployments -> routes -> report."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from acgs_operator.api.v1alpha1 import ConstitutionStatus, ModelDeploymentStatus
from acgs_operator.pipeline import curves, plots, profiles, report, routes, samples, summary
from acgs_operator.pipeline import stages as stages_mod
from acgs_operator.pipeline.board import Board
from acgs_operator.pipeline.kube import Kube
from acgs_operator.pipeline.stages import (
    Stages,
    State,
    View,
    constitution_view,
    deployment_view,
    status_of,
    training_view,
)
from acgs_operator.pipeline.watch import wait_all

STACK, CONSTITUTION, ROUTES, REEVALUATE = "stack", "constitution", "routes", "reevaluate"
AMENDMENT = " (amended by acgs pipeline: re-evaluation check)"


@dataclass
class Options:
    namespace: str = "acgs-pipeline"
    profile: str = "full"
    report_dir: Path | None = None
    kubeconfig: Path | None = None  # an existing cluster (the operator and a Ray head are started against it)
    attach: bool = False  # use the cluster as it is: an operator already runs there
    keep: bool = False
    samples_dir: Path = samples.MANIFESTS / "samples"
    constitution_file: Path = samples.MANIFESTS / "constitution.yaml"
    components: list[str] = field(default_factory=list)
    requests: int = 100
    train_timeout: float = 900.0
    deploy_timeout: float = 300.0
    reevaluate: bool = True  # edit the Constitution at the end: every deployment re-evaluated, none retrained


def default_report_dir(now: dt.datetime) -> Path:
    return Path("reports") / "pipeline" / now.strftime("%Y%m%dT%H%M%SZ")


def train_key(name: str) -> str:
    return f"train/{name}"


def deploy_key(name: str) -> str:
    return f"deploy/{name}"


def reevaluate_key(name: str) -> str:
    return f"reevaluate/{name}"


def plan_stages(plan: samples.Samples, stack_title: str, reevaluate: bool = False) -> Stages:
    """One stage per step, in display order (pure)."""
    stages = Stages()
    stages.add(STACK, stack_title)
    stages.add(CONSTITUTION, f"constitution {plan.constitution['metadata']['name']}")
    for job in plan.training_jobs:
        stages.add(train_key(job["metadata"]["name"]), f"train {samples.component_of(job)}")
    for md in plan.deployments:
        stages.add(deploy_key(md["metadata"]["name"]), f"deploy {samples.route_prefix(md, plan.training_jobs)}")
    if plan.deployments:
        stages.add(ROUTES, "route checks")
    if plan.deployments and reevaluate:
        stages.add(REEVALUATE, "constitution edited")
        for md in plan.deployments:
            stages.add(reevaluate_key(md["metadata"]["name"]),
                       f"re-evaluate {samples.route_prefix(md, plan.training_jobs)}")
    return stages


class _Stack:
    """What the pipeline started (nothing with --attach) and the addresses it needs."""

    def __init__(self, opts: Options, log: Callable[[str], object]) -> None:
        self.opts, self.log = opts, log
        self.embedded: Any = None
        self.kubeconfig: Path | None = opts.kubeconfig
        self.dashboard = ""

    def start(self) -> str:
        if self.opts.attach:
            return f"attached to the cluster of {self.kubeconfig or os.environ.get('KUBECONFIG', '~/.kube/config')}"
        from acgs_operator.devenv import binaries
        from acgs_operator.devenv.embedded import EmbeddedStack

        binaries.ensure_all(only=["kubernetes"] if self.kubeconfig else ["etcd", "kubernetes"])
        self.embedded = EmbeddedStack(existing_kubeconfig=self.kubeconfig)
        self.embedded.start(log=self.log)
        self.kubeconfig = self.embedded.kubeconfig
        if self.embedded.ray and self.embedded.ray.state:
            self.dashboard = self.embedded.ray.state.dashboard_url
        where = "embedded control plane" if self.opts.kubeconfig is None else f"cluster of {self.opts.kubeconfig}"
        return f"{where}, Ray {self.dashboard or os.environ.get('ACGS_RAY_ADDRESS', '-')}, operator running"

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()

    def describe(self) -> str:
        if self.opts.attach:
            return "attached"
        return "embedded" if self.opts.kubeconfig is None else f"kubeconfig {self.opts.kubeconfig}"


def _current(stages: Stages) -> str:
    """The stage an unexpected error belongs to: the first one not done."""
    return next((k for k, s in stages.items.items() if s.state is not State.DONE), STACK)


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


class Pipeline:
    def __init__(self, opts: Options, console: Console) -> None:
        self.opts, self.console = opts, console
        self.plan = profiles.select(
            profiles.apply_profile(samples.load(opts.samples_dir, opts.constitution_file), opts.profile),
            opts.components,
        )
        self.stop = threading.Event()
        self.jobs: dict[str, dict[str, Any] | None] = {}
        self.deployments: dict[str, dict[str, Any] | None] = {}
        self.curves: dict[str, tuple[list[dict[str, Any]], str]] = {}
        self.probes: list[dict[str, Any]] = []
        self.constitution_hash = ""
        self.amended_hash = ""
        self.reevaluated: dict[str, dict[str, Any] | None] = {}

    # ------------------------------------------------------------------ steps

    def _constitution(self, kube: Kube, board: Board) -> None:
        ns, constitution = self.opts.namespace, self.plan.constitution
        kube.apply(constitution, ns)
        name = constitution["metadata"]["name"]
        last = wait_all(kube, board, kind="Constitution", namespace=ns, stages={CONSTITUTION: name},
                        view=constitution_view, started=lambda k: board.stages[k].started,
                        per_stage_timeout=120, overall_timeout=120, stop=self.stop)
        self.constitution_hash = status_of(last.get(CONSTITUTION), ConstitutionStatus).hash or ""

    def _train(self, kube: Kube, board: Board) -> None:
        ns = self.opts.namespace
        for job in self.plan.training_jobs:
            kube.apply(job, ns)
        keys = {train_key(j["metadata"]["name"]): j["metadata"]["name"] for j in self.plan.training_jobs}
        last = wait_all(kube, board, kind="TrainingJob", namespace=ns, stages=keys, view=training_view,
                        started=lambda k: board.stages[k].started, per_stage_timeout=self.opts.train_timeout,
                        overall_timeout=self.opts.train_timeout * max(1, len(keys)), stop=self.stop)
        self.jobs = {name: last.get(key) for key, name in keys.items()}
        for name, obj in self.jobs.items():  # read while the Ray head still holds the logs
            self.curves[name] = curves.fetch_curve(obj)

    def _deploy(self, kube: Kube, board: Board) -> None:
        ns = self.opts.namespace
        for md in self.plan.deployments:
            kube.apply(md, ns)
        keys = {deploy_key(m["metadata"]["name"]): m["metadata"]["name"] for m in self.plan.deployments}
        last = wait_all(kube, board, kind="ModelDeployment", namespace=ns, stages=keys, view=deployment_view,
                        started=lambda k: board.stages[k].started, per_stage_timeout=self.opts.deploy_timeout,
                        overall_timeout=self.opts.deploy_timeout * 2, stop=self.stop)
        self.deployments = {name: last.get(key) for key, name in keys.items()}

    def _reevaluate(self, kube: Kube, board: Board) -> None:
        """Edit the Constitution (one principle's description): every deployment is re-evaluated under the new
        hash by an evaluation-only job and served again, and no TrainingJob gets a new generation."""
        ns, constitution = self.opts.namespace, self.plan.constitution
        name = constitution["metadata"]["name"]
        amended = json.loads(json.dumps(constitution))
        amended["spec"]["principles"][0]["description"] = (
            amended["spec"]["principles"][0].get("description", "") + AMENDMENT)
        board.update(REEVALUATE, View(State.RUNNING, "applying the edit"))
        kube.apply(amended, ns)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.stop.is_set():
            status = status_of(kube.get("Constitution", name, ns), ConstitutionStatus)
            if status.hash and status.hash != self.constitution_hash:
                self.amended_hash = status.hash
                break
            time.sleep(0.5)
        if not self.amended_hash:
            board.update(REEVALUATE, View(State.FAILED, "the Constitution's hash did not change"))
            return
        board.update(REEVALUATE, View(State.DONE, f"hash {self.constitution_hash} -> {self.amended_hash}", 100.0))
        keys = {reevaluate_key(m["metadata"]["name"]): m["metadata"]["name"] for m in self.plan.deployments}
        last = wait_all(kube, board, kind="ModelDeployment", namespace=ns, stages=keys,
                        view=stages_mod.reevaluation_view(self.amended_hash),
                        started=lambda k: board.stages[k].started, per_stage_timeout=self.opts.deploy_timeout,
                        overall_timeout=self.opts.deploy_timeout * 2, stop=self.stop)
        self.reevaluated = {name: last.get(key) for key, name in keys.items()}
        generations = {j["metadata"]["name"]: (kube.get("TrainingJob", j["metadata"]["name"], ns) or {})
                       .get("metadata", {}).get("generation") for j in self.plan.training_jobs}
        retrained = [n for n, g in generations.items() if g != 1]
        if retrained:
            board.update(REEVALUATE, View(State.FAILED, "retrained: " + ", ".join(retrained)))

    def _served(self) -> list[routes.Served]:
        served = []
        for md in self.plan.deployments:
            name = md["metadata"]["name"]
            status = status_of(self.deployments.get(name), ModelDeploymentStatus)
            if status.phase == "Ready" and status.url:
                component = samples.deployment_component(md, self.plan.training_jobs)
                served.append(routes.Served(component, name, status.url))
        return served

    def _routes(self, board: Board) -> None:
        served = self._served()
        if not served:
            board.update(ROUTES, View(State.FAILED, "no deployment is Ready"))
            return
        probes = routes.plan(served, self.constitution_hash, self.opts.requests)
        total = sum(p.count for p in probes)
        done = 0
        with httpx.Client(timeout=30.0) as client:
            for probe in probes:
                board.update(ROUTES, View(State.RUNNING, probe.route, 100.0 * done / total))
                result = routes.run_probe(client, probe, self.stop)
                self.probes.append(result.summary())
                done += probe.count
        bad = [p["route"] for p in self.probes if not p["ok"]]
        missing = len(served) < len(self.plan.deployments)
        if bad or missing:
            detail = "unexpected answers: " + ", ".join(bad) if bad else "not every deployment was Ready"
            board.update(ROUTES, View(State.FAILED, detail))
        else:
            board.update(ROUTES, View(State.DONE, f"{total} requests, every answer as expected", 100.0))

    # ------------------------------------------------------------------ the flow

    def _flow(self, stack: _Stack, board: Board) -> None:
        board.update(STACK, View(State.RUNNING, "starting"))
        board.update(STACK, View(State.DONE, stack.start(), 100.0))
        kube = Kube(stack.kubeconfig)
        try:
            ns = self.opts.namespace
            if kube.ensure_namespace(ns):
                board.log(f"namespace {ns} created")
            if stack.embedded is not None:  # models are signed with the development key: verify them here
                from acgs_operator.devenv import keys

                keys.install_verification_keys(stack.embedded.kubectl, ns)
            previous = [("ModelDeployment", m["metadata"]["name"]) for m in self.plan.deployments]
            previous += [("TrainingJob", j["metadata"]["name"]) for j in self.plan.training_jobs]
            removed = kube.delete_and_wait(previous, ns)
            if removed:
                board.log(f"deleted the previous run's {', '.join(removed)} (every figure comes from this run)")
            self._constitution(kube, board)
            if board.stages[CONSTITUTION].state is not State.DONE:
                return
            self._train(kube, board)
            if self.plan.deployments:
                self._deploy(kube, board)
                self._routes(board)
                if self.opts.reevaluate and board.stages[ROUTES].state is State.DONE:
                    self._reevaluate(kube, board)
        finally:
            kube.close()

    def run(self) -> int:
        started_at = dt.datetime.now(dt.UTC)
        start = time.monotonic()
        out_dir = self.opts.report_dir or default_report_dir(started_at)
        stack = _Stack(self.opts, lambda m: None)
        stack_title = "control plane + Ray + operator" if not self.opts.attach else "cluster"
        stages = plan_stages(self.plan, stack_title, self.opts.reevaluate)
        interrupted = False
        # SIGINT set too: started in the background by a script, a process inherits it ignored
        previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            with Board(stages, self.console) as board:
                stack.log = board.log
                try:
                    self._flow(stack, board)
                except KeyboardInterrupt:
                    interrupted = True
                    self.stop.set()
                    self._fail_unfinished(board, "interrupted (Ctrl-C)")
                except Exception as exc:
                    key = _current(stages)
                    board.update(key, View(State.FAILED, f"{type(exc).__name__}: {exc}"))
                    self._fail_unfinished(board, f"not run: {board.stages[key].title} failed")
            data = self._report(stages, started_at, time.monotonic() - start, stack.describe())
            written = self._write(data, out_dir)
            self.console.print(summary.render(data))
            self.console.print(f"report: {written}", highlight=False)
            if self.opts.keep and stack.embedded is not None and not interrupted:
                self._keep(stack)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if stack.embedded is not None:
                self.console.print("stopping what the pipeline started ...", highlight=False)
            stack.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if interrupted:
            return 130
        return 0 if data["ok"] else 1

    def _fail_unfinished(self, board: Board, why: str) -> None:
        for key, stage in board.stages.items.items():
            if not stage.state.terminal:
                board.update(key, View(State.FAILED, why if stage.state is State.PENDING else f"{why}: {stage.detail}"))

    def _keep(self, stack: _Stack) -> None:
        self.console.print(
            f"\nThe stack keeps running (--keep).\n\n  export KUBECONFIG={stack.kubeconfig}\n"
            f"  kubectl get acgs -n {self.opts.namespace}\n\n  Ray dashboard: {stack.dashboard}\n\n"
            "Ctrl-C stops everything.",
            highlight=False,
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        while not stop.wait(1):
            pass

    # ------------------------------------------------------------------ report

    def _report(self, stages: Stages, started_at: dt.datetime, wall: float, cluster: str) -> dict[str, Any]:
        jobs = self.plan.training_jobs
        components = [
            report.component_row(self.jobs.get(j["metadata"]["name"]), samples.component_of(j), j["metadata"]["name"],
                                 *self.curves.get(j["metadata"]["name"], ([], "not read")))
            for j in jobs
        ]
        deployments = [
            report.deployment_row(self.deployments.get(m["metadata"]["name"]), samples.deployment_component(m, jobs),
                                  m["metadata"]["name"])
            for m in self.plan.deployments
        ]
        meta = {
            "startedAt": started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "wallSeconds": round(wall, 2),
            "profile": self.opts.profile,
            "namespace": self.opts.namespace,
            "cluster": cluster,
            "constitution": self.plan.constitution["metadata"]["name"],
            "constitutionHash": self.constitution_hash,
            "requestsPerRoute": self.opts.requests,
            "command": " ".join(["acgs", *sys.argv[1:]]),
        }
        principles = [p["id"] for p in self.plan.constitution["spec"]["principles"]]
        names = [m["metadata"]["name"] for m in self.plan.deployments] if self.reevaluated else []
        reevaluations = [
            report.reevaluation_row(self.reevaluated.get(name), self.deployments.get(name), self.jobs,
                                    samples.deployment_component(m, jobs), name,
                                    stages.items.get(reevaluate_key(name)))
            for name, m in zip(names, self.plan.deployments, strict=False)
        ]
        meta["amendedConstitutionHash"] = self.amended_hash or None
        return report.build(meta=meta, stages=stages.rows(), components=components, deployments=deployments,
                            routes=self.probes, principles=principles, reevaluations=reevaluations)

    def _write(self, data: dict[str, Any], out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            data["plotsWritten"] = plots.write_all(data, out_dir)
        except Exception as exc:  # a plot must not hide the results
            data["plotsWritten"] = []
            data["plotError"] = f"{type(exc).__name__}: {exc}"
        (out_dir / "report.json").write_text(json.dumps(data, indent=2))
        (out_dir / "report.md").write_text(report.to_markdown(data))
        return out_dir


def run(opts: Options, console: Console | None = None) -> int:
    return Pipeline(opts, console or Console()).run()
