"""The end of a Ray job's entrypoint (``python -m acgs_workloads.train`` / ``.reevaluate``).

On a real node a resubmitted training job printed its result event, wrote its artifact, and then the Python
process died with a segmentation fault while the interpreter tore down Ray's core worker: Ray reported the job
FAILED (exit code 139) and the TrainingJob failed with its result in hand. Once the result is printed there is
nothing left to clean up that the job needs, so the entrypoint flushes its output and leaves with
``os._exit``, skipping interpreter finalization.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import NoReturn


def exit_process(code: int) -> NoReturn:
    """Flush stdout and stderr, then end the process with ``code`` without interpreter teardown."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken stream: nothing more to write
            stream.flush()
    os._exit(code)
