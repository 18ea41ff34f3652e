"""experiments.sample: random and intra-class grids of a run, with the BigGAN sampling flags."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from PIL import Image

from experiments import sample as sample_cli
from gan_jax.checkpoint import Checkpointer
from gan_jax.config import save_config
from gan_jax.train import build_gan, init_state
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    """A run directory holding a class-conditional DCGAN's checkpoint: initialised, then every
    G parameter perturbed (a fresh conditional BatchNorm is the same for every class)."""
    workdir = tmp_path_factory.mktemp("run")
    config = tiny_config(model__conditioning="projection", model__num_classes=3)
    save_config(config, workdir / "config.json")
    state = init_state(build_gan(config), jax.random.key(0))
    rng = np.random.default_rng(0)
    state = state.replace(g_params=jax.tree.map(
        lambda x: x + 0.2 * rng.normal(size=x.shape).astype(np.float32), state.g_params))
    checkpointer = Checkpointer(workdir / "checkpoints")
    checkpointer.save(state)
    checkpointer.close()
    return workdir


def test_an_intra_class_grid_has_a_row_per_class_upscaled(conditional_run, tmp_path):
    out = tmp_path / "classes.png"
    argv = ["--run", str(conditional_run), "--out", str(out), "--per-class", "4",
            "--upscale", "2", "--truncation", "0.5", "--standing-stats", "2"]
    assert sample_cli.main(argv) == 0
    grid = np.asarray(Image.open(out))
    side = 28 + 2  # image and padding (gan_jax.sample.image_grid)
    assert grid.shape == (2 * (3 * side + 2), 2 * (4 * side + 2))
    # Nearest-neighbour x2: every pixel is a 2x2 block.
    np.testing.assert_array_equal(grid[::2, ::2], grid[1::2, 1::2])
    assert np.std(grid) > 10
    rows = [grid[2 * (2 + r * side):2 * (2 + r * side + 28), :] for r in range(3)]
    assert not np.array_equal(rows[0], rows[1])


@pytest.mark.parametrize("flags,message", [
    (["--per-class", "0"], "--per-class=0 must be at least 1"),
    (["--truncation", "0"], "--truncation=0.0 must be positive"),
    (["--generator", "raw"], "eval.generator='raw' is unknown"),
    (["--out-name"], None),
])
def test_bad_flags_are_one_line(conditional_run, tmp_path, capsys, flags, message):
    if message is None:  # argparse's own refusal
        with pytest.raises(SystemExit):
            sample_cli.main(["--run", str(conditional_run), *flags])
        return
    assert sample_cli.main(["--run", str(conditional_run), "--out", str(tmp_path / "g.png"),
                            *flags]) == 2
    assert capsys.readouterr().err.strip().startswith(f"error: {message}")


def test_an_unconditional_run_has_no_class_grid(tmp_path, capsys):
    config = tiny_config()
    save_config(config, tmp_path / "config.json")
    checkpointer = Checkpointer(tmp_path / "checkpoints")
    checkpointer.save(init_state(build_gan(config), jax.random.key(0)))
    checkpointer.close()
    assert sample_cli.main(["--run", str(tmp_path), "--out", str(tmp_path / "g.png"),
                            "--per-class", "2"]) == 2
    assert "needs a class-conditional run" in capsys.readouterr().err
    assert sample_cli.main(["--run", str(tmp_path), "--out", str(tmp_path / "g.png"),
                            "--count", "9"]) == 0
    assert np.asarray(Image.open(tmp_path / "g.png")).shape == (3 * 30 + 2, 3 * 30 + 2)


def test_the_trained_generator_of_an_ema_run_samples_as_the_run_without_it(tmp_path):
    """--generator trained: G's trained weights, the grid of the same state saved without its
    EMA; the default samples the EMA."""
    grids = {}
    with_ema = tiny_config(optim__ema_kimg=10.0)
    state = init_state(build_gan(with_ema), jax.random.key(0))
    rng = np.random.default_rng(1)
    state = state.replace(slots={**state.slots, "ema": jax.tree.map(
        lambda x: x + 0.2 * rng.normal(size=x.shape).astype(np.float32), state.g_params)})
    for name, config, saved, flags in (
            ("ema", with_ema, state, []), ("trained", with_ema, state, ["--generator", "trained"]),
            ("plain", tiny_config(), state.replace(slots={}), [])):
        run = tmp_path / name
        save_config(config, run / "config.json")
        checkpointer = Checkpointer(run / "checkpoints")
        checkpointer.save(saved)
        checkpointer.close()
        assert sample_cli.main(["--run", str(run), "--out", str(tmp_path / f"{name}.png"),
                                "--count", "4", *flags]) == 0
        grids[name] = np.asarray(Image.open(tmp_path / f"{name}.png"))
    np.testing.assert_array_equal(grids["trained"], grids["plain"])
    assert np.mean(grids["ema"] != grids["trained"]) > 0.1

