"""What results files record about the machine: the cores a timing could use."""

import os
import subprocess
import sys

import pytest

from experiments.provenance import usable_cores


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux's")
def test_usable_cores_counts_the_cores_the_process_is_pinned_to():
    assert 1 <= usable_cores() <= os.cpu_count()
    # A process pinned to one core (as `taskset -c 0` does) records one core, not the machine's.
    pinned = subprocess.run(
        [sys.executable, "-c",
         "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
         "from experiments.provenance import usable_cores; print(usable_cores())"],
        capture_output=True, text=True, check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert pinned.stdout.strip() == "1"

