"""The entrypoints leave with their exit code and their output flushed, without interpreter teardown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[3]
# the subprocesses import this checkout's packages, wherever the venv's editable install points
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(ROOT / "workloads"), str(ROOT / "operator"), os.environ.get("PYTHONPATH", "")])}


def test_exit_process_flushes_what_was_printed_and_keeps_the_code() -> None:
    script = ("import sys\nfrom acgs_workloads.entrypoint import exit_process\n"
              "print('result line', end='')\nprint('to stderr', file=sys.stderr, end='')\n"
              "import atexit\natexit.register(lambda: print('teardown ran'))\nexit_process(3)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=ENV)
    assert (done.returncode, done.stdout, done.stderr) == (3, "result line", "to stderr"), "no teardown, no loss"


@pytest.mark.parametrize("module", ["acgs_workloads.train", "acgs_workloads.reevaluate"])
def test_an_entrypoint_exits_with_its_code(module: str) -> None:
    args = ["--config", "{not json"] if module.endswith("train") else ["--model-uri", "/nowhere",
                                                                         "--constitution", "{not json"]
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120,
                          env=ENV)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip(), "the error reached stderr before the process ended"
