"""Config overrides: typed, named errors, round trip through the saved JSON."""

import pytest

from gan_jax import config as config_lib
from gan_jax.config import Config, with_overrides
from gan_jax.errors import UserError
from tests.conftest import DCGAN_CONFIG, MLP_CONFIG


def test_overrides_parse_strings_by_field_type():
    config = with_overrides(Config(), {"train.batch_size": "128", "optim.g_lr": "1e-3",
                                       "data.fit": "pad", "optim.d_lr": 1,
                                       "data.tfds_data_dir": "none"})
    assert config.train.batch_size == 128 and config.optim.g_lr == 1e-3
    assert config.data.fit == "pad" and config.data.tfds_data_dir is None
    assert isinstance(config.optim.d_lr, float)


@pytest.mark.parametrize("key,value,message", [
    ("train.batchsize", "1", "unknown config key 'train.batchsize'"),
    ("trian.batch_size", "1", "unknown config key 'trian.batch_size'"),
    ("train", "1", "not of the form section.key"),
    ("train.batch_size", "64.5", "'train.batch_size' expects int, got 64.5"),
    ("train.batch_size", "big", "'train.batch_size' expects int, got 'big'"),
    ("optim.g_lr", "fast", "'optim.g_lr' expects float"),
    ("model.resolution", "True", "'model.resolution' expects int, got True"),
    ("model.mlp.layerz", "3", "unknown config key 'model.mlp.layerz': section 'model.mlp' "
                              "has no 'layerz'"),
    ("model.mlp", "3", "'model.mlp' is a section; set one of its keys: model.mlp.layers"),
    ("model.g_width.x", "3", "'g_width' is a setting, not a section"),
    ("model.mlp.layers", "0", "model.mlp.layers=0 must be >= 1"),
    ("model.biggan.init", "uniform", "model.biggan.init='uniform' is unknown; choose one of "
                                     "ortho, n02, glorot"),
])
def test_bad_overrides_are_named(key, value, message):
    with pytest.raises(UserError, match=message):
        with_overrides(Config(), {key: value})


def test_saved_config_round_trips(tmp_path):
    config = config_lib.load_config(f"{MLP_CONFIG}:test")
    config_lib.save_config(config, tmp_path / "config.json")
    assert config_lib.read_config(tmp_path / "config.json") == config


def test_differences_lists_changed_keys():
    a = Config()
    b = with_overrides(a, {"model.g_width": 32, "train.seed": 3, "model.mlp.layers": "3"})
    assert config_lib.differences(a, b) == {"model.g_width": (64, 32), "train.seed": (0, 3),
                                            "model.mlp.layers": (2, 3)}


def test_an_architecture_section_round_trips_and_old_flat_keys_still_load(tmp_path):
    config = with_overrides(Config(), {"model.arch": "mlp", "model.mlp.layers": 4,
                                       "model.biggan.hierarchical": "false"})
    assert config.model.mlp.layers == 4 and config.model.biggan.hierarchical is False
    config_lib.save_config(config, tmp_path / "config.json")
    assert config_lib.read_config(tmp_path / "config.json") == config
    # A config.json written before the MLP settings moved into model.mlp
    old = config_lib.to_dict(Config())
    del old["model"]["mlp"], old["model"]["biggan"]
    old["model"].update(mlp_layers=3, maxout_pieces=4, d_dropout=0.25)
    restored = config_lib.from_dict(old)
    assert restored.model.mlp == config_lib.MLPSettings(layers=3, maxout_pieces=4,
                                                        d_dropout=0.25)


@pytest.mark.parametrize("path", [DCGAN_CONFIG, MLP_CONFIG])
@pytest.mark.parametrize("variant", ["", ":test"])
def test_experiment_configs_load(path, variant):
    config = config_lib.load_config(f"{path}{variant}")
    assert isinstance(config, Config)


def test_variant_overrides_only_what_differs():
    full = config_lib.load_config(str(DCGAN_CONFIG))
    cpu = config_lib.load_config(f"{DCGAN_CONFIG}:cpu")
    assert set(config_lib.differences(full, cpu)) <= {
        "model.g_width", "model.d_width", "train.total_kimg", "train.log_every_kimg",
        "train.sample_every_kimg", "train.checkpoint_every_kimg",
        "eval.metrics", "eval.every_kimg"}  # no FID on the CPU: an hour per evaluation


def test_unknown_variant_and_missing_file():
    with pytest.raises(UserError, match="unknown variant 'huge'"):
        config_lib.load_config(f"{DCGAN_CONFIG}:huge")
    with pytest.raises(UserError, match="config file 'nope.py' not found"):
        config_lib.load_config("nope.py")


def test_each_choice_field_lists_exactly_its_components_registry():
    """The Literal of a choice setting is what the override parser and build_gan accept; it
    must name every registered implementation and nothing else."""
    from gan_jax import config as c
    from gan_jax.data import PLACEMENTS
    from gan_jax.losses import LOSSES
    from gan_jax.metrics.features import COMPUTE_MODES
    from gan_jax.metrics.resize import RESIZE_MODES
    from gan_jax.metrics.weights import STORAGES
    from gan_jax.models import ARCHITECTURES, COMPUTE_DTYPES
    from gan_jax.models.biggan import WEIGHT_INITS
    from gan_jax.models.convolution import IMPLEMENTATIONS
    from gan_jax.penalties import PENALTIES
    for literal, registry in [(c.Arch, ARCHITECTURES), (c.Loss, LOSSES),
                              (c.Penalty, ("none", *PENALTIES)), (c.Placement, PLACEMENTS),
                              (c.ComputeDtype, COMPUTE_DTYPES),
                              (c.ConvImplementation, ("auto", *IMPLEMENTATIONS)),
                              (c.Resize, RESIZE_MODES), (c.WeightStorage, STORAGES),
                              (c.InceptionCompute, COMPUTE_MODES),
                              (c.BigGANInit, WEIGHT_INITS)]:
        assert sorted(c.choices_of(literal)) == sorted(registry), literal


def test_a_bad_choice_is_refused_from_the_fields_declaration(tmp_path):
    from gan_jax.errors import UserError
    from gan_jax.train import build_gan
    with pytest.raises(UserError, match=r"train.loss='wgan' is unknown; choose one of "
                                        r"minimax, non_saturating"):
        with_overrides(Config(), {"train.loss": "wgan"})
    with pytest.raises(UserError, match=r"model.arch='stylegan' is unknown"):
        with_overrides(Config(), {"model.arch": "stylegan"})
    # A config built in Python, not through overrides, is checked by build_gan the same way.
    import dataclasses
    built = dataclasses.replace(Config(), reg=dataclasses.replace(Config().reg,
                                                                  penalty="gp"))
    with pytest.raises(UserError, match=r"reg.penalty='gp' is unknown; choose one of none"):
        build_gan(built)


def test_an_architectures_own_setting_is_refused_for_another_architecture():
    from gan_jax.models import check_model_config
    config = with_overrides(Config(), {"model.arch": "dcgan", "model.biggan.hierarchical": False})
    with pytest.raises(UserError, match="model.biggan.hierarchical is set but "
                                        "model.arch='dcgan' does not read it"):
        check_model_config(config.model)
    check_model_config(with_overrides(config, {"model.arch": "biggan"}).model)
    # every nested model section is an architecture's, and each is checked
    from gan_jax.models import ARCHITECTURE_SECTIONS, ARCHITECTURES
    assert sorted(ARCHITECTURE_SECTIONS) == ["biggan", "mlp", "progan"]
    assert set(ARCHITECTURE_SECTIONS) <= set(ARCHITECTURES)
    with pytest.raises(UserError, match="model.progan.fmap_max is set but model.arch='dcgan'"):
        check_model_config(with_overrides(Config(), {"model.progan.fmap_max": 64}).model)
