"""What results files record about the machine: the cores a timing could use."""

import os
import subprocess
import sys

import pytest

from experiments import provenance
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


def test_the_commit_is_the_one_the_process_started_with(monkeypatch):
    """A study's result written after the tree moved on names the code that made it."""
    heads = iter(["a" * 40, "b" * 40])

    def git(argv, **kwargs):
        out = next(heads) if argv[1] == "rev-parse" else ""
        return subprocess.CompletedProcess(argv, 0, stdout=out + "\n")

    provenance.git_commit.cache_clear()
    monkeypatch.setattr(provenance.subprocess, "run", git)
    try:
        assert provenance.git_commit() == "a" * 40
        assert provenance.git_commit() == "a" * 40  # HEAD is "b..." by now
    finally:
        provenance.git_commit.cache_clear()
