"""The ``acgs`` command line.

acgs up                              control plane + CRDs + Ray + operator + sample Constitution
acgs pipeline                        train all six components, serve three, call every route, write a report
acgs operator run                    the operator (what the container runs)
acgs crds generate|check             write crds/ and helm/acgs/crds/ from the API models, or fail on drift
acgs model train --component C --out DIR
                                     train and evaluate one component here (plain torch, no cluster or Ray)
acgs model predict DIR [FILE|-]      answer JSON lines (a file or stdin) as the model's POST /predict would
acgs dev build-binaries              build etcd, kube-apiserver, kubectl, helm, kind from Go modules
acgs dev control-plane up|down       a local kube-apiserver + etcd on loopback
acgs dev ray up|down                 a local Ray head with its dashboard
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import os
import signal
import sys
import threading
from importlib import resources
from pathlib import Path
from typing import BinaryIO

from acgs_operator.devenv import binaries
from acgs_operator.devenv.process import ServiceError


def _sample_constitution() -> str:
    return resources.files("acgs_workloads.constitution").joinpath("default.yaml").read_text()


def _wait_for_ctrl_c() -> None:
    stop = threading.Event()
    # Both set explicitly: a process started in the background by a non-interactive shell inherits SIGINT
    # ignored, and Python then installs no KeyboardInterrupt handler.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        while not stop.wait(1):
            pass
    except KeyboardInterrupt:
        pass


def cmd_up(args: argparse.Namespace) -> int:
    from acgs_operator.devenv.embedded import EmbeddedStack

    existing = None if args.local or not os.environ.get("KUBECONFIG") else Path(os.environ["KUBECONFIG"])
    binaries.ensure_all(only=["kubernetes"] if existing else ["etcd", "kubernetes"])
    stack = EmbeddedStack(with_ray=not args.no_ray, existing_kubeconfig=existing)
    try:
        stack.start()
        stack.kubectl.apply(_sample_constitution(), namespace="default")
        stack.kubectl.run("wait", "--for=condition=Valid", "--timeout=60s", "constitution/default", "-n", "default")
        hash_ = stack.kubectl.run(
            "get", "constitution/default", "-n", "default", "-o", "jsonpath={.status.hash}"
        ).stdout
        kubeconfig = stack.kubeconfig
        print(
            f"""
ACGS is up. The sample Constitution is Valid with hash {hash_}.

  export KUBECONFIG={kubeconfig}
  kubectl get constitutions,trainingjobs,modeldeployments     # or: kubectl get acgs
  kubectl explain trainingjob.spec.training
"""
        )
        if stack.ray and stack.ray.state:
            print(f"  Ray dashboard: {stack.ray.state.dashboard_url}   (RAY_ADDRESS={stack.ray.state.address})")
        print(f"  operator log:  {stack.operator.log if stack.operator else '-'}\n\nCtrl-C stops everything.")
        sys.stdout.flush()
        _wait_for_ctrl_c()
    finally:
        print("stopping ...")
        stack.stop()
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from acgs_operator.pipeline.run import Options, run

    kubeconfig = args.kubeconfig or (None if args.local else os.environ.get("KUBECONFIG"))
    opts = Options(
        namespace=args.namespace,
        profile=args.profile,
        report_dir=Path(args.report_dir) if args.report_dir else None,
        kubeconfig=Path(kubeconfig) if kubeconfig else None,
        attach=args.attach,
        keep=args.keep,
        components=args.component or [],
        requests=args.requests,
        train_timeout=args.train_timeout,
        deploy_timeout=args.deploy_timeout,
        reevaluate=not args.no_reevaluate,
    )
    if args.samples:
        opts.samples_dir = Path(args.samples)
    if args.constitution:
        opts.constitution_file = Path(args.constitution)
    if opts.attach and opts.kubeconfig is None:
        print("acgs pipeline: --attach needs a cluster (--kubeconfig or KUBECONFIG)", file=sys.stderr)
        return 2
    from rich.console import Console

    # a log file or a pipe gets wide lines (rich would wrap the tables at 80 columns)
    return run(opts, Console() if sys.stdout.isatty() else Console(width=160))


def cmd_operator_run(args: argparse.Namespace) -> int:
    from acgs_operator.runner import run

    run(namespaces=args.namespace or None, verbose=args.verbose)
    return 0


def cmd_crds(args: argparse.Namespace) -> int:
    from acgs_operator.api import crdgen

    directory = Path(args.dir)
    if args.action == "generate":
        for path in crdgen.write(directory):
            print(f"wrote {path}")
        return 0
    stale = crdgen.drift(directory)
    if stale:
        print(f"CRDs out of date in {directory}: {', '.join(stale)}; run `acgs crds generate`", file=sys.stderr)
        return 1
    print(f"CRDs in {directory} match the API models")
    return 0


def cmd_model_train(args: argparse.Namespace) -> int:
    """Train, evaluate and store one component offline; exit 0 when its gates passed, 1 when they did not or the
    run failed, 2 on unusable arguments."""
    from pydantic import ValidationError

    from acgs_workloads.contract import ModelSpec
    from acgs_workloads.offline import OfflineError, constitution_from, train_offline

    try:
        constitution = constitution_from(args.constitution)
        model = ModelSpec(hidden_size=args.hidden_size) if args.hidden_size is not None else None
    except (OfflineError, ValidationError) as error:
        print(f"acgs model train: {error}", file=sys.stderr)
        return 2
    try:
        result = train_offline(args.component, Path(args.out), args.examples, args.epochs, args.seed, constitution,
                               model=model)
    except OfflineError as error:
        print(f"acgs model train: {error}", file=sys.stderr)
        return 2
    except (ValueError, KeyError) as error:  # what `python -m acgs_workloads.train` reports as a failed run
        print(f"acgs model train: the run failed: {error}", file=sys.stderr)
        return 1
    m, c, gates = result.metrics, result.compliance, result.gates

    def figure(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    flag = "" if args.constitution is None else f" --constitution {args.constitution}"
    print(
        f"\nmodel       {result.model.uri}\n"
        f"sha256      {result.model.sha256}\n"
        f"accuracy    {figure(m.accuracy)}  f1 {figure(m.f1)}  p99 {figure(m.p99_latency_ms)} ms\n"
        f"compliance  {c.score:.4f} (threshold {c.threshold}) under {constitution.name}@{constitution.hash}\n"
        f"gates       {'passed' if gates.passed else 'FAILED: ' + '; '.join(gates.failures)}\n\n"
        f"  acgs model predict {Path(result.model.uri).parent} requests.jsonl{flag}"
    )
    return 0 if gates.passed else 1


def _batch_size(value: str) -> int:
    size = int(value)
    if not 1 <= size <= 1024:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and 1024")
    return size


def cmd_model_predict(args: argparse.Namespace) -> int:
    """One JSON answer per input line on stdout; exit 0 when every line was served, 1 when a line was refused,
    2 when the model, the constitution or the input file cannot be used."""
    from acgs_workloads.offline import DEFAULT_BATCH_SIZE, OfflineError, OfflinePredictor, constitution_from

    stdin = args.file is None or args.file == "-"
    try:
        constitution = constitution_from(args.constitution)
        predictor = OfflinePredictor.open(args.model, constitution, guard=not args.no_guard)
        # bytes: a line that is not UTF-8 is answered 400 (as the HTTP route does), not the end of the stream
        source: BinaryIO = sys.stdin.buffer if stdin else open(args.file, "rb")  # noqa: SIM115
    except (OfflineError, OSError) as error:
        print(f"acgs model predict: {error}", file=sys.stderr)
        return 2
    batch_size = args.batch_size or (1 if source.isatty() else DEFAULT_BATCH_SIZE)
    refused = 0
    try:
        for answer in predictor.answer(source, batch_size):
            print(answer.text, flush=batch_size == 1)
            refused += not answer.ok
    finally:
        sys.stdout.flush()
        if not stdin:
            source.close()
    if refused:
        print(f"acgs model predict: {refused} request(s) answered with an error", file=sys.stderr)
    return 1 if refused else 0


def cmd_build(args: argparse.Namespace) -> int:
    return binaries.main(
        (["--force"] if args.force else [])
        + (["--cluster"] if args.cluster else [])
        + [f"--only={o}" for o in args.only or []]
    )


def cmd_control_plane(args: argparse.Namespace) -> int:
    from acgs_operator.devenv import controlplane
    from acgs_operator.devenv.embedded import install_crds
    from acgs_operator.devenv.kubectl import Kubectl

    if args.action == "down":
        stopped = controlplane.stop_from_state()
        print("control plane stopped" if stopped else "no control plane was running")
        return 0
    binaries.ensure_all(only=["etcd", "kubernetes"])
    plane = controlplane.ControlPlane(controlplane.default_workdir(), apiserver_port=args.port)
    state = plane.start()
    install_crds(Kubectl(plane.kubeconfig))
    print(f"control plane up at {state.server} ({plane.startup_seconds:.1f}s); CRDs installed")
    print(f"export KUBECONFIG={state.kubeconfig}\nlogs: {plane.logs}\nstop: acgs dev control-plane down")
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    from acgs_operator.devenv.cluster import DevCluster
    from acgs_operator.devenv.process import ServiceError

    cluster = DevCluster()
    if args.action == "down":
        print("cluster stopped" if cluster.down() else "no cluster was running")
        return 0
    try:
        state = cluster.up()
    except ServiceError as exc:
        print(f"acgs dev cluster up: {exc}", file=sys.stderr)
        return 1
    steps = ", ".join(f"{k} {v}s" for k, v in state.seconds.items())
    print(f"cluster up: node {state.node_name} ({state.node_ip}), API server {state.server}")
    print(f"set-up times: {steps}" if steps else "", end="\n" if steps else "")
    print(f"export KUBECONFIG={state.kubeconfig}\nstop: acgs dev cluster down")
    return 0


def cmd_ray(args: argparse.Namespace) -> int:
    from acgs_operator.devenv import ray_local

    if args.action == "down":
        print("Ray head stopped" if ray_local.stop_from_state() else "no Ray head was running")
        return 0
    state = ray_local.RayHead(num_cpus=args.num_cpus).start()
    print(f"Ray head up: dashboard {state.dashboard_url}\nexport RAY_ADDRESS={state.address}\nstop: acgs dev ray down")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="acgs", description="ACGS: governance models on Kubernetes and Ray.")
    sub = root.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the embedded default until Ctrl-C")
    up.add_argument("--no-ray", action="store_true", help="do not start a local Ray head (use ACGS_RAY_ADDRESS)")
    up.add_argument(
        "--local", action="store_true", help="start the embedded control plane even when KUBECONFIG names a cluster"
    )
    up.set_defaults(func=cmd_up)

    pipe = sub.add_parser(
        "pipeline",
        help="apply the samples, train all six components, serve three, call every route, write a report",
        description="On the embedded default (or the cluster of KUBECONFIG / --kubeconfig): apply the Constitution "
        "and the sample TrainingJobs, wait for them, apply the ModelDeployments, call every route, print a "
        "summary and write a report directory. Exits 1 when a stage failed.",
    )
    pipe.add_argument("--profile", choices=["full", "small"], default="full",
                      help="full: the samples as written; small: smaller datasets and epochs (CI)")
    pipe.add_argument("--namespace", "-n", default="acgs-pipeline", help="created if absent")
    pipe.add_argument("--report-dir", help="default: reports/pipeline/<UTC timestamp>/")
    pipe.add_argument("--kubeconfig", help="use this cluster (default: KUBECONFIG, else the embedded control plane)")
    pipe.add_argument("--local", action="store_true", help="the embedded control plane even when KUBECONFIG is set")
    pipe.add_argument("--attach", action="store_true",
                      help="start nothing: an operator and Ray already serve the cluster (e.g. `acgs up`)")
    pipe.add_argument("--keep", action="store_true", help="keep the stack running after the report (Ctrl-C stops)")
    pipe.add_argument("--component", action="append", help="only this component (repeatable)")
    pipe.add_argument("--requests", type=int, default=100, help="requests per route for the latency sample")
    pipe.add_argument("--train-timeout", type=float, default=900.0, help="seconds per TrainingJob once it runs")
    pipe.add_argument("--deploy-timeout", type=float, default=300.0, help="seconds per ModelDeployment")
    pipe.add_argument("--no-reevaluate", action="store_true",
                      help="skip the last step: edit the Constitution, every deployment re-evaluated, none retrained")
    pipe.add_argument("--samples", help="directory of trainingjob-*.yaml and modeldeployment-*.yaml")
    pipe.add_argument("--constitution", help="the Constitution manifest (default manifests/constitution.yaml)")
    pipe.set_defaults(func=cmd_pipeline)

    op = sub.add_parser("operator", help="the operator").add_subparsers(dest="action", required=True)
    run = op.add_parser("run", help="run the operator against the current KUBECONFIG")
    run.add_argument("--namespace", "-n", action="append", help="watch only these namespaces")
    run.add_argument("--verbose", action="store_true")
    run.set_defaults(func=cmd_operator_run)

    crds = sub.add_parser("crds", help="CustomResourceDefinitions from the API models")
    crds.add_argument("action", choices=["generate", "check"])
    crds.add_argument("--dir", default="crds")
    crds.set_defaults(func=cmd_crds)

    from acgs_workloads.contract import COMPONENTS  # torch-free

    model = sub.add_parser("model", help="train a model here, or answer JSON lines with one (no cluster)")
    model_sub = model.add_subparsers(dest="action", required=True)
    train = model_sub.add_parser(
        "train",
        help="train and evaluate one component in plain torch; write its artifact under --out",
        description="The training run of a TrainingJob, on this machine without Ray: generate the data, train, "
        "evaluate under the constitution and write the artifact to OUT/models/<component>-offline/. Exits 0 when "
        "the evaluation gates passed, 1 when they did not, 2 on unusable arguments.",
    )
    train.add_argument("--component", required=True, choices=COMPONENTS, metavar="C",
                       help=f"the component: {', '.join(COMPONENTS)}")
    train.add_argument("--out", required=True, help="artifact root (created if absent)")
    train.add_argument("--examples", type=int, default=12000, help="generated examples (train + test)")
    train.add_argument("--epochs", type=int, default=3, help="passes over the training split")
    train.add_argument("--seed", type=int, default=42, help="seed of the generator and of the training")
    train.add_argument("--hidden-size", type=int, help="model width (default: the component's spec.model default)")
    train.add_argument("--constitution", metavar="FILE",
                       help="a Constitution manifest (YAML or JSON; default: the packaged default constitution)")
    train.set_defaults(func=cmd_model_train)
    predict = model_sub.add_parser(
        "predict",
        help="answer JSON requests, one a line, as the model's POST /predict would",
        description="Read one JSON request per line from FILE (or stdin) and write one JSON line per request to "
        "stdout: the response row POST /predict of a ModelDeployment of this model would answer, or "
        '{"error": {"status", "reason", "message", "body"}, "line": N} for a refused or invalid request. Blank '
        "lines are skipped. Exits 0 when every request was served, 1 when one was refused, 2 when the model, "
        "the constitution or the input cannot be used.",
    )
    predict.add_argument("model", metavar="DIR",
                         help="the model directory (OUT/models/<run>), its weights file, or an OUT holding one model")
    predict.add_argument("file", metavar="FILE", nargs="?", help="a file of JSON lines (- or none: stdin)")
    predict.add_argument("--constitution", metavar="FILE",
                         help="a Constitution manifest (default: the packaged default constitution); the model "
                         "must have been evaluated under it")
    predict.add_argument("--no-guard", action="store_true",
                         help="serve the model's own decisions (no runtime guard), like spec.runtimeGuard: false")
    predict.add_argument("--batch-size", type=_batch_size, metavar="N",
                         help="requests per forward pass (default: 64; 1 when stdin is a terminal)")
    predict.set_defaults(func=cmd_model_predict)

    dev = sub.add_parser("dev", help="local development services").add_subparsers(dest="what", required=True)
    build = dev.add_parser("build-binaries", help="build the control-plane binaries from Go modules")
    build.add_argument("--force", action="store_true")
    build.add_argument("--only", action="append", choices=[r.name for r in binaries.RECIPES])
    build.add_argument("--cluster", action="store_true", help="also the node (kubelet, ...), CoreDNS and KubeRay")
    build.set_defaults(func=cmd_build)
    cp = dev.add_parser("control-plane", help="local kube-apiserver + etcd")
    cp.add_argument("action", choices=["up", "down"])
    cp.add_argument("--port", type=int, default=None, help="kube-apiserver port (default: a free one)")
    cp.set_defaults(func=cmd_control_plane)
    cluster = dev.add_parser(
        "cluster", help="a real single-node Kubernetes (containerd + kubelet) with cluster DNS and KubeRay"
    )
    cluster.add_argument("action", choices=["up", "down"])
    cluster.set_defaults(func=cmd_cluster)
    ray = dev.add_parser("ray", help="local Ray head")
    ray.add_argument("action", choices=["up", "down"])
    ray.add_argument("--num-cpus", type=int, default=4)
    ray.set_defaults(func=cmd_ray)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # `kill -USR1 <pid>` prints every thread's stack: what a long-running command is waiting on
    with contextlib.suppress(OSError, ValueError):  # no file descriptor behind sys.stderr (embedded, captured)
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        return int(args.func(args))
    except (ServiceError, binaries.BuildError, FileNotFoundError) as exc:
        print(f"acgs: error: {exc}", file=sys.stderr)
        return 1
