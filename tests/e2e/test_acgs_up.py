"""The README's main command: `acgs up` brings up the embedded default and stops cleanly on Ctrl-C."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from acgs_operator.devenv.kubectl import Kubectl
from acgs_operator.devenv.process import port_in_use


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    deadline, seen = time.monotonic() + timeout, []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"acgs up exited ({proc.wait()}) before {marker!r}:\n{''.join(seen)}")
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"no {marker!r} within {timeout}s:\n{''.join(seen)}")


def test_acgs_up_serves_the_sample_constitution_until_ctrl_c(tmp_path: Path) -> None:
    env = dict(os.environ, ACGS_RUN_DIR=str(tmp_path / "run"), PYTHONUNBUFFERED="1")
    env.pop("ACGS_RAY_ADDRESS", None)
    env.pop("KUBECONFIG", None)  # a fresh machine: the embedded control plane
    proc = subprocess.Popen(
        [sys.executable, "-m", "acgs_operator", "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        out = read_until(proc, "Ctrl-C stops everything", timeout=240)
        kubeconfig = Path(re.search(r"export KUBECONFIG=(\S+)", out).group(1))  # type: ignore[union-attr]
        dashboard = re.search(r"Ray dashboard: (\S+)", out).group(1)  # type: ignore[union-attr]
        server = re.search(r"control plane up at https://127.0.0.1:(\d+)", out)
        kubectl = Kubectl(kubeconfig)
        constitution = kubectl.get_json("constitution", "default", "-n", "default")
        assert constitution["status"]["phase"] == "Valid"
        assert constitution["status"]["hash"] in out
        with urllib.request.urlopen(f"{dashboard}/api/version", timeout=10) as resp:
            assert "ray_version" in json.load(resp)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest = proc.communicate(timeout=90)[0]
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # the CLI dumps its threads' stacks: where it hangs
            time.sleep(2)
            proc.kill()
            rest = proc.communicate()[0]
            raise AssertionError(f"acgs up did not stop in 90 s after Ctrl-C; output and stacks:\n{rest}") from None
    assert proc.returncode == 0, rest
    assert server is not None and not port_in_use(int(server.group(1))), "kube-apiserver still listening"
