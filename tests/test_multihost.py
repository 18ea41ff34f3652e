"""Multi-process training: 2 processes x 4 CPU devices (each loading only its own rows of every
global batch) end where 1 process x 8 devices does, through the same CLI a cluster would run."""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from gan_jax.metric_writers import read_metrics
from tests.conftest import DCGAN_CONFIG, REPO, requires_fashion_mnist
from tests.helpers import final_state, leaves

pytestmark = requires_fashion_mnist


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(workdir, devices_per_process: int, *flags: str, overrides=()) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_per_process}")
    return subprocess.Popen([sys.executable, "-m", "experiments.train", "--config",
                             f"{DCGAN_CONFIG}:test", "--workdir", str(workdir), "--no-progress",
                             *flags, *overrides], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait(processes) -> None:
    try:
        results = [p.communicate(timeout=600) for p in processes]
    finally:
        for p in processes:  # a peer that died leaves the other waiting: never hang the suite
            p.kill()
    for p, (_, err) in zip(processes, results, strict=True):
        assert p.returncode == 0, err


# Both placements in the slow suite (40 s each: two processes compile the step); one process
# of eight devices equal to one device stays in the default suite (test_train_step).
@pytest.mark.slow
@pytest.mark.parametrize("placement", ["host", "device"])
def test_two_processes_of_four_devices_equal_one_of_eight(tmp_path, placement):
    overrides = [f"data.placement={placement}"]
    port = _free_port()
    _wait([_train(tmp_path / "two", 4, "--coordinator-address", f"127.0.0.1:{port}",
                  "--num-processes", "2", "--process-id", str(i), overrides=overrides)
           for i in range(2)])
    _wait([_train(tmp_path / "one", 8, overrides=overrides)])
    two, one = final_state(tmp_path / "two"), final_state(tmp_path / "one")
    assert int(two.step) == int(one.step) == 3
    assert jax.tree.structure(two) == jax.tree.structure(one)
    for a, b in zip(leaves(two), leaves(one), strict=True):
        # Gloo sums across processes in another order than XLA does within one, so the states
        # agree to rounding (as in test_eight_devices_give_the_one_device_state), not bitwise.
        scale = np.linalg.norm(b.astype(np.float64))
        assert np.linalg.norm((a - b).astype(np.float64)) <= 1e-5 * scale + 1e-6
    # Process 0 alone writes the logs: every step once.
    assert [row["step"] for row in read_metrics(tmp_path / "two")] == [1, 2, 3]
