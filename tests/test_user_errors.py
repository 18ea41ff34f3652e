"""Every user error is one `error:` line and exit 2, and leaves an existing run directory as it
was: counts and intervals out of their bounds, run directories that cannot be one, and
evaluation flags that name what a run does not have."""

import dataclasses
import subprocess
import typing

import pytest

from experiments import evaluate as evaluate_cli
from experiments import train as train_cli
from gan_jax.config import Bounds, Config, leaf_settings
from gan_jax.errors import UserError
from gan_jax.train import build_gan
from tests.conftest import DCGAN_CONFIG, requires_fashion_mnist
from tests.helpers import snapshot

pytestmark = requires_fashion_mnist

RUN = ["--config", f"{DCGAN_CONFIG}:test", "--no-progress"]


def _one_error_line(capsys, main, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished 3-step run (checkpoints at steps 2 and 3), shared by the refusals below."""
    workdir = tmp_path_factory.mktemp("run")
    assert train_cli.main([*RUN, "--workdir", str(workdir)]) == 0
    return workdir


# Zero and negative counts, intervals, rates and probabilities out of range.
BAD_VALUES = [
    ("train.batch_size", "0", ">= 1"), ("train.batch_size", "-16", ">= 1"),
    ("train.total_kimg", "0", "> 0"), ("train.total_kimg", "-1", "> 0"),
    ("train.log_every_kimg", "0", "> 0"), ("train.sample_every_kimg", "-0.5", "> 0"),
    ("train.checkpoint_every_kimg", "0", "> 0"), ("train.keep_checkpoints", "0", ">= 1"),
    ("train.grid_size", "0", ">= 1"), ("train.n_critic", "0", ">= 1"),
    ("train.rollback_tries", "-1", ">= 0"), ("train.seed", "-1", ">= 0"),
    ("model.latent_dim", "0", ">= 1"), ("model.g_width", "0", ">= 1"),
    ("model.d_width", "-8", ">= 1"), ("model.minibatch_std", "-1", ">= 0"),
    ("model.mlp.d_dropout", "1.0", "in [0, 1)"), ("optim.g_lr", "0", "> 0"),
    ("optim.b1", "1.5", "in [0, 1)"), ("optim.ema_kimg", "0", "> 0 or None"),
    ("reg.penalty_every", "0", ">= 1"), ("reg.penalty_weight", "-1", ">= 0"),
    ("augment.p", "1.5", "in [0, 1]"), ("data.per_class", "0", ">= 1 or None"),
    ("eval.batch_size", "0", ">= 1"), ("eval.every_kimg", "0", "> 0 or None"),
]


@pytest.mark.parametrize("key,value,bounds", BAD_VALUES,
                         ids=[f"{k}={v}" for k, v, _ in BAD_VALUES])
def test_a_value_out_of_bounds_is_one_line_and_the_run_is_unchanged(trained_run, capsys, key,
                                                                  value, bounds):
    before = snapshot(trained_run)
    err = _one_error_line(capsys, train_cli.main,
                          [*RUN, "--workdir", str(trained_run), f"{key}={value}"])
    assert f" must be {bounds}" in err and err.startswith(f"error: {key}="), err
    assert snapshot(trained_run) == before


def test_every_numeric_setting_declares_its_bounds():
    """A new count or interval without bounds would reach the step unchecked (0 batches,
    a zero interval) and end in a traceback or a silent wrong number."""
    unbounded = []
    for name, section in vars(Config()).items():
        for key, field, field_type, _ in leaf_settings(name, section):
            types = set(typing.get_args(field_type)) or {field_type}
            if types & {int, float} and "bounds" not in field.metadata:
                unbounded.append(key)
    assert unbounded == []


def test_bounds_also_hold_for_configs_built_in_python():
    config = Config()
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=0))
    with pytest.raises(UserError, match=r"train.batch_size=0 must be >= 1 \(its default is 64\)"):
        build_gan(config)


@pytest.mark.parametrize("bounds,inside,outside", [
    (Bounds(1), [1, 2, 10**9], [0, -1, 0.999]),
    (Bounds(0, low_open=True), [1e-12, 5.0], [0, -1e-12]),
    (Bounds(0, 1, high_open=True), [0, 0.5, 0.999999], [1, -0.1, 1.5]),
    (Bounds(0, 1, low_open=True), [1e-9, 1], [0, 1.0000001]),
])
def test_bounds_admit_exactly_their_interval(bounds, inside, outside):
    assert all(bounds.admits(v) for v in inside)
    assert not any(bounds.admits(v) for v in outside)


def test_self_attention_on_a_map_it_cannot_pool_is_one_line(tmp_path, capsys):
    """DCGAN at 28x28 has 7x7 hidden maps: a side the attention's 2x2 pooling cannot halve,
    refused with the config; channels not a multiple of 8 when the block is built."""
    run = [*RUN, "--workdir", str(tmp_path / "run")]
    err = _one_error_line(capsys, train_cli.main, [*run, "model.attention_resolution=7"])
    assert "model.attention_resolution=7: model.arch='dcgan' at this resolution has hidden " \
           "feature maps of even sides 14" in err, err
    err = _one_error_line(capsys, train_cli.main, [*run, "model.attention_resolution=14",
                                                   "model.g_width=12", "model.d_width=12"])
    assert "self-attention needs channels divisible by 8 and an even side" in err
    assert "is 14x14x12" in err, err


def test_a_run_directory_that_is_a_file_or_lies_under_one(tmp_path, capsys):
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    err = _one_error_line(capsys, train_cli.main, [*RUN, "--workdir", str(afile)])
    assert f"the run directory {afile} is a file, not a folder" in err
    err = _one_error_line(capsys, train_cli.main, [*RUN, "--workdir", str(afile / "run")])
    assert f"lies under the file {afile}" in err
    assert afile.read_text() == "keep me"


def test_a_run_directory_in_a_read_only_folder(small_filesystem, capsys):
    subprocess.run(["mount", "-o", "remount,ro", str(small_filesystem)], check=True)
    workdir = small_filesystem / "runs" / "new"
    err = _one_error_line(capsys, train_cli.main, [*RUN, "--workdir", str(workdir)])
    assert f"cannot create the run directory {workdir}: {small_filesystem} is not writable" in err


def test_evaluation_flags_a_run_cannot_satisfy(trained_run, capsys, tmp_path):
    before = snapshot(trained_run)
    base = ["--run", str(trained_run), "--metrics", "fid16", "--no-progress"]
    cases = [
        (["--step", "7"], "has no checkpoint of step 7; it has steps 2, 3"),
        (["--step", "-1"], "has no checkpoint of step -1"),
        (["--batch-size", "0"], "eval.batch_size=0 must be >= 1"),
        (["--output", str(trained_run)], "is a folder, not a file"),
        (["--output", str(trained_run / "config.json" / "x.jsonl")], "lies under the file"),
    ]
    for flags, message in cases:
        assert message in _one_error_line(capsys, evaluate_cli.main, [*base, *flags]), flags
    assert snapshot(trained_run) == before
