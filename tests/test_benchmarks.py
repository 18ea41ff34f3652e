"""The speed benchmark's baseline does the same work, and the script runs end to end (tiny, CPU)."""

import json

import jax
import numpy as np
import pytest

from experiments.benchmarks import inception_speed, train_step_speed
from experiments.benchmarks.turns import time_in_turns
from gan_jax.config import with_overrides
from gan_jax.train import build_gan, init_state

torch = pytest.importorskip("torch")
from experiments.benchmarks import torch_dcgan  # noqa: E402 - needs torch


def flax_parameter_count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("resolution", [28, 32, 64])
def test_torch_dcgan_has_the_flax_dcgan_parameters(resolution):
    config = with_overrides(train_step_speed.case_config("dcgan32_b64", "float32", "tiny"),
                            {"model.resolution": resolution})
    m = config.model
    state = init_state(build_gan(config), jax.random.key(0))
    g = torch_dcgan.generator(m.resolution, m.channels, m.g_width, m.latent_dim)
    d = torch_dcgan.discriminator(m.resolution, m.channels, m.d_width)
    assert torch_dcgan.parameter_count(g) == flax_parameter_count(state.g_params)
    assert torch_dcgan.parameter_count(d) == flax_parameter_count(state.d_params)
    images = g(torch.zeros(2, m.latent_dim, 1, 1))
    assert tuple(images.shape) == (2, m.channels, resolution, resolution)
    assert tuple(d(images).shape) == (2,)


# The SNGAN case is slow (11 s); tests/test_resnet.py checks the ResNet against PyTorch.
@pytest.mark.parametrize("case", [pytest.param("sngan32_b64_n5", marks=pytest.mark.slow),
                                  "mlp28_b100"])
def test_torch_transcriptions_have_the_flax_parameters(case):
    """The ResNet SNGAN and MLP baselines: the same parameter counts as gan_jax's networks
    (D with its head), the same image shape, one logit per image."""
    config = train_step_speed.case_config(case, "float32", "tiny")
    m = config.model
    state = init_state(build_gan(config), jax.random.key(0))
    step = train_step_speed.torch_step_factory(config, "eager", "float32")("cpu")
    assert torch_dcgan.parameter_count(step.g) == flax_parameter_count(state.g_params)
    assert torch_dcgan.parameter_count(step.d) == flax_parameter_count(state.d_params)
    images = step.g(torch.zeros(2, m.latent_dim))
    assert tuple(images.shape) == (2, m.channels, m.resolution, m.resolution)
    assert tuple(step.d(images).shape) == (2,)


@pytest.mark.parametrize("case", ["sngan32_b64_n5", "mlp28_b100"])
def test_torch_steps_train_both_networks_every_critic_update(case):
    config = train_step_speed.case_config(case, "float32", "tiny")
    m, t = config.model, config.train
    step = train_step_speed.torch_step_factory(config, "eager", "float32")("cpu")
    assert (step.loss_name, step.n_critic) == (t.loss, t.n_critic)
    before = [p.detach().clone() for p in [*step.g.parameters(), *step.d.parameters()]]
    real = torch.rand(t.batch_size * t.n_critic, m.channels, m.resolution, m.resolution)
    step.step(real * 2 - 1)
    after = [*step.g.parameters(), *step.d.parameters()]
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert int(step.d_opt.state[next(step.d.parameters())]["step"]) == t.n_critic


def test_torch_step_trains_both_networks():
    step = torch_dcgan.DCGANStep(32, 3, 8, 16, 4, "eager", "float32", "cpu")
    before = [p.detach().clone() for p in [*step.g.parameters(), *step.d.parameters()]]
    step.step(torch.rand(4, 3, 32, 32) * 2 - 1)
    after = [*step.g.parameters(), *step.d.parameters()]
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.slow
def test_benchmark_script_writes_every_row(tmp_path):
    rows = train_step_speed.main(
        ["--cases", "dcgan32_b64", "--dtypes", "float32", "--torch-modes", "eager",
         "--scale", "tiny", "--steps", "2", "--repeats", "1", "--warmup", "1", "--profile",
         "--out", str(tmp_path)])
    assert list((tmp_path / "profiles" / "dcgan32_b64_float32").rglob("*.xplane.pb"))
    record = json.loads((tmp_path / "results.json").read_text())
    assert [(r["framework"], r.get("mode")) for r in record["rows"]] == [
        ("jax", "jit"), ("torch", "eager")]
    assert record["measured_bf16_tflops"] > 0 and record["versions"]["jax"] == jax.__version__
    for row in rows:
        assert "error" not in row, row
        assert row["img_per_sec"] == pytest.approx(8 / row["seconds_per_step"])
        # The analytic count of this tiny DCGAN (both frameworks do the same work).
        assert row["flops_per_step"] == rows[0]["flops_per_step"] > 0
        assert row["tflops"] == pytest.approx(row["flops_per_step"] / row["seconds_per_step"]
                                              / 1e12)


def test_benchmarks_read_the_commit_when_they_start(monkeypatch):
    """A benchmark's results name the code that ran: its commit is read before any work, not
    when the results are written minutes later (by then HEAD may have moved on)."""
    from experiments import provenance
    from experiments.benchmarks import step_profile

    def stop(*args, **kwargs):
        raise SystemExit("stopped before any work")
    monkeypatch.setattr(step_profile, "case_config", stop)
    monkeypatch.setattr(inception_speed, "load_images", stop)
    for run in (lambda: train_step_speed.main(["--cases", "dcgan99"]),
                lambda: step_profile.main(["--case", "dcgan32_b64"]),
                lambda: inception_speed.main(["--count", "8", "--batch-size", "8"])):
        provenance.git_commit.cache_clear()
        with pytest.raises(SystemExit):
            run()
        assert provenance.git_commit.cache_info().currsize == 1


def test_unknown_case_is_one_line(capsys):
    with pytest.raises(SystemExit, match="unknown case 'dcgan99'; choose from dcgan64_b128"):
        train_step_speed.main(["--cases", "dcgan99"])


@pytest.mark.slow  # 12-18 s: 6 compilations
def test_conv_forms_times_every_convolution_of_a_model_in_each_form(tmp_path, capsys):
    from experiments.benchmarks import conv_forms
    config = "experiments/configs/gan_zoo.py:ns_gan.test"
    assert conv_forms.main(["--config", config, "--batch", "2", "--repeats", "1",
                            "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "conv_forms.json").read_text())["rows"]
    # The DCGAN's D at 28x28: its two strided 4x4 convolutions (G's are transposed ones).
    assert [(r["input"], r["kernel"], r["strides"]) for r in rows] == [
        ([1, 28, 28, 1], [4, 4], [2, 2]), ([1, 14, 14, 8], [4, 4], [2, 2])]
    for row in rows:  # the form auto picks was timed, and the fastest is among those timed
        assert row["auto"] in row["ms"] and row["fastest"] in row["ms"]
        assert set(row["ms"]) <= {"matmul", "taps", "xla"} and "xla" in row["ms"]
    assert "| auto | fastest |" in capsys.readouterr().out


def test_step_profile_groups_names_and_sums_a_traced_step(tmp_path, capsys):
    from experiments.benchmarks import step_profile
    op = "jit(train_step)/transpose(jvp(Discriminator))/body/Conv_1/dot_general"
    assert step_profile.group_of(op, "fusion") == "Discriminator backward body/Conv_1 dot_general"
    assert step_profile.group_of("jit(train_step)/jvp(DCGANGenerator)/ConvTranspose_0/slice",
                                 "fusion") == "Generator forward ConvTranspose_0 slice"
    hlo = jax.jit(lambda x: jax.numpy.tanh(x @ x)).lower(np.ones((4, 4), np.float32)).compile()
    opcodes = {opcode for opcode, _ in step_profile.hlo_instructions(hlo.as_text()).values()}
    assert "parameter" in opcodes and ({"dot", "fusion"} & opcodes)
    # The product's FLOPs (2 m n k, here with two contracted axes), on whichever instruction
    # runs it (a dot, or the fusion XLA:CPU wraps it in), counted once.
    product = jax.jit(lambda x, y: jax.numpy.tanh(jax.numpy.einsum("mab,abn->mn", x, y)))
    compiled = product.lower(np.ones((8, 3, 5), np.float32), np.ones((3, 5, 7), np.float32))
    assert sum(step_profile.product_flops(compiled.compile().as_text()).values()) == 2 * 8 * 15 * 7
    record = step_profile.main(["--case", "dcgan32_b64", "--scale", "tiny", "--steps", "2",
                                "--warmup", "1", "--out", str(tmp_path)])
    groups = record["groups_ms"]
    # Both networks' layers were traced, forward and backward, and the groups add up.
    for prefix in ("Generator forward", "Discriminator forward", "Discriminator backward"):
        assert any(g.startswith(prefix) and ms > 0 for g, ms in groups.items()), prefix
    assert abs(sum(groups.values()) - record["summed_ms_per_step"]) < 1e-6
    products = record["products"]  # the tiny DCGAN's products, timed and counted
    assert 0 < products["ms_per_step"] < record["summed_ms_per_step"]
    assert products["gflop_per_step"] > 0
    assert json.loads((tmp_path / "profile.json").read_text())["groups_ms"] == groups
    assert "HloModule" in (tmp_path / "step.hlo.txt").read_text()
    assert "step wall" in capsys.readouterr().out


def test_step_profile_counts_a_products_flops_on_every_run_of_a_loop_body(tmp_path):
    """A critic loop's products run once per iteration: FLOPs are counted per run, or the
    products' rate comes out n_critic - 1 times too low."""
    from experiments.benchmarks import step_profile
    # A trip count known only at run time: XLA cannot unroll the loop into five products.
    loop = jax.jit(lambda x, n: jax.lax.fori_loop(0, n, lambda i, h: jax.numpy.tanh(h @ x), x))
    x, n = np.full((64, 64), 0.01, np.float32), np.int32(5)
    hlo = loop.lower(x, n).compile().as_text()
    jax.block_until_ready(loop(x, n))
    with jax.profiler.trace(str(tmp_path)):
        jax.block_until_ready(loop(x, n))
    _, runs = step_profile.thunk_times(str(tmp_path), step_profile.hlo_instructions(hlo))
    flops = step_profile.product_flops(hlo)
    assert [runs.get(name, 0) for name in flops] == [5]  # one product, run five times
    assert sum(flops[name] * runs.get(name, 0) for name in flops) == 5 * 2 * 64 ** 3


def test_interleaved_benchmark_times_both_frameworks_in_turns(tmp_path):
    rows = train_step_speed.main(
        ["--cases", "dcgan32_b64", "--dtypes", "float32", "--torch-modes", "eager",
         "--scale", "tiny", "--steps", "1", "--repeats", "3", "--warmup", "1", "--interleave",
         "--out", str(tmp_path)])
    assert [(r["framework"], r.get("mode", r.get("conv_implementation"))) for r in rows] == [
        ("jax", "auto"), ("torch", "eager")]
    for row in rows:
        assert "error" not in row, row
        assert row["interleaved"] and len(row["repeats_s"]) == 3
        assert row["seconds_per_step"] == pytest.approx(np.median(row["repeats_s"]))
        assert row["img_per_sec"] == pytest.approx(8 / row["seconds_per_step"])
    record = json.loads((tmp_path / "results.json").read_text())
    assert len(record["rows"]) == 2 and record["device"] == jax.devices()[0].device_kind


def test_time_in_turns_alternates_the_runners_after_their_warmup():
    calls = []
    times = time_in_turns({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                          repeats=3, warmup=2)
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3
    assert set(times) == {"a", "b"} and all(len(t) == 3 and min(t) >= 0 for t in times.values())


@pytest.mark.slow  # builds the FID Inception in JAX and the reference TorchScript network
def test_interleaved_inception_benchmark_times_both_networks_in_turns(tmp_path):
    rows = inception_speed.main(["--count", "2", "--batch-size", "2", "--repeats", "2",
                                 "--fid-count", "2", "--modes", "float32", "--interleave",
                                 "--chain-sizes", "auto,1", "--out", str(tmp_path)])
    assert [r["impl"] for r in rows] == ["gan_jax float32, auto convolutions, chains auto",
                                         "gan_jax float32, auto convolutions, chains 1",
                                         "torch reference float32 (cpu)"]
    for row in rows:
        assert row["interleaved"] and len(row["repeats_s"]) == 2
        assert row["img_per_sec"] == pytest.approx(2 / np.median(row["repeats_s"]))
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["rows"] == rows and record["cpu"] and record["cpu_cores"] >= 1


def test_a_case_can_name_an_experiment_variant():
    config = train_step_speed.case_config("infogan28_fashion_b64", "float32", "full")
    assert (config.model.arch, config.model.resolution, config.model.channels) == ("infogan", 28, 1)
    assert (config.train.loss, config.train.batch_size, config.optim.g_lr) == (
        "non_saturating", 64, 2e-4)
