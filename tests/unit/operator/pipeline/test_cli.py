"""`acgs pipeline` arguments reach the pipeline's options."""

from __future__ import annotations

from pathlib import Path

import pytest

from acgs_operator import cli
from acgs_operator.pipeline import run as pipeline_run


def test_pipeline_arguments_become_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[pipeline_run.Options] = []
    monkeypatch.setattr(pipeline_run, "run", lambda opts, console=None: seen.append(opts) or 0)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    argv = ["pipeline", "--profile", "small", "--report-dir", str(tmp_path), "--component", "constitutional-ai",
            "--requests", "7", "-n", "ns1"]
    assert cli.main(argv) == 0
    opts = seen[0]
    assert (opts.profile, opts.report_dir, opts.components, opts.requests, opts.namespace) == (
        "small", tmp_path, ["constitutional-ai"], 7, "ns1")
    assert opts.kubeconfig is None and not opts.attach and not opts.keep

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kc"))
    assert cli.main(["pipeline"]) == 0 and seen[1].kubeconfig == tmp_path / "kc"
    assert cli.main(["pipeline", "--local"]) == 0 and seen[2].kubeconfig is None


def test_attach_needs_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert cli.main(["pipeline", "--attach"]) == 2
