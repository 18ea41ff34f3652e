"""Run directories that cannot be written: read-only or full. Each is one line and exit 2, and
no checkpoint is lost. Real filesystems: a small tmpfs, remounted read-only or filled up (needs
root, as `make test` in CI has; skipped elsewhere)."""

import errno
import re
import subprocess

import jax

from experiments.train import main
from gan_jax import config as config_lib
from gan_jax.checkpoint import Checkpointer
from gan_jax.loop import train
from gan_jax.train import build_gan, init_state
from tests.conftest import DCGAN_CONFIG, requires_fashion_mnist
from tests.helpers import snapshot

pytestmark = requires_fashion_mnist

RUN = ["--config", f"{DCGAN_CONFIG}:test", "--no-progress"]


def _fill(filesystem, leave: int = 0) -> None:
    """Writes a file until the filesystem has at most `leave` bytes free."""
    with open(filesystem / "filler", "wb") as handle:
        chunk = b"\0" * 4096
        try:
            while True:
                handle.write(chunk)
                handle.flush()
                stat = subprocess.run(["df", "-B1", "--output=avail", str(filesystem)],
                                      capture_output=True, text=True).stdout.split()[-1]
                if int(stat) <= leave:
                    return
        except OSError as error:
            assert error.errno == errno.ENOSPC


def _error(capsys, workdir, *overrides) -> str:
    assert main([*RUN, "--workdir", str(workdir), *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


def _trained(workdir):
    config = config_lib.load_config(f"{DCGAN_CONFIG}:test")
    train(config, workdir, progress=False)  # 3 steps; checkpoints at 2 and 3
    return config


def test_a_read_only_run_directory_is_one_line_and_changes_nothing(small_filesystem, capsys):
    workdir = small_filesystem / "run"
    _trained(workdir)
    before = snapshot(workdir)
    subprocess.run(["mount", "-o", "remount,ro", str(small_filesystem)], check=True)
    err = _error(capsys, workdir, "train.total_kimg=0.096")
    assert "Read-only file system; make it writable" in err
    assert "the checkpoint of step 3 is complete and the same command resumes it" in err
    assert snapshot(workdir) == before


def test_a_full_run_directory_is_one_line_and_changes_nothing(small_filesystem, capsys):
    workdir = small_filesystem / "run"
    _trained(workdir)
    before = snapshot(workdir)
    _fill(small_filesystem)
    err = _error(capsys, workdir, "train.total_kimg=0.096")
    assert "No space left on device; free some space" in err
    assert snapshot(workdir) == before


def test_space_running_out_during_training_loses_no_checkpoint(small_filesystem, capsys):
    workdir = small_filesystem / "run"
    config = _trained(workdir)
    # Room for the logs and a sample grid, not for another checkpoint: refused before orbax
    # writes any of it.
    _fill(small_filesystem, leave=24 * 1024)
    err = _error(capsys, workdir, "train.total_kimg=0.32")
    assert re.search(r"the checkpoint of step 4 needs up to [\d.]+ MiB but \S+ has 0.0 MiB "
                     r"free; free some space, then run the same command to resume from step 3",
                     err), err
    assert not [p for p in (workdir / "checkpoints").iterdir() if "tmp" in p.name]
    like = init_state(build_gan(config), jax.random.key(0))
    checkpointer = Checkpointer(workdir / "checkpoints")
    complete = checkpointer.all_steps()
    assert 3 in complete  # the old checkpoint survived the failed save
    for step in complete:
        assert int(checkpointer.restore(step, like).step) == step
    checkpointer.close()
    (small_filesystem / "filler").unlink()  # space freed: the same command finishes the run
    assert main([*RUN, "--workdir", str(workdir), "train.total_kimg=0.32"]) == 0
