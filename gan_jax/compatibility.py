"""Config-time checks that the chosen pieces of the zoo make sense together.

Each rule names both choices and says what to change, and they all run in `build_gan`, before
anything is compiled or written, so a contradictory config never starts a run. A setting on its
own (a bound, a choice) is checked from its field's declaration (gan_jax.config); a section's
own rules are its component's (gan_jax.augment, gan_jax.terms for reg, gan_jax.optim),
called first; the model section's (gan_jax.models.check_model_config, each architecture's
checks) run when `build_gan` builds the networks, right after these.
"""

from __future__ import annotations

from gan_jax import augment, models, optim, terms
from gan_jax.config import Config, check_all_bounds, refuse_without
from gan_jax.errors import UserError
from gan_jax.losses import BCE_LOSSES
from gan_jax.penalties import PENALTIES


def check_config(config: Config) -> None:
    m, o, t, r, a = config.model, config.optim, config.train, config.reg, config.augment
    check_all_bounds(config)  # every bound and every choice
    # Each component's rules about its own section, then the rules across sections.
    augment.check_augment_config(a)
    terms.check_reg_config(r)
    optim.check_optim_config(o)
    # DRAGAN and R1/R2 constrain D only near the data, which leaves the critic unbounded
    # elsewhere: not a Wasserstein critic.
    if t.loss == "wasserstein" and r.clip is None and r.penalty != "wgan_gp" \
            and m.spectral_norm == "none":
        raise UserError("train.loss='wasserstein' needs a Lipschitz critic, but reg.clip=None, "
                        f"reg.penalty='{r.penalty}' and model.spectral_norm='none'; set "
                        "reg.clip=0.01, reg.penalty=wgan_gp or model.spectral_norm=d")
    if r.label_smoothing and t.loss not in BCE_LOSSES:
        raise UserError(f"reg.label_smoothing={r.label_smoothing} is defined for the "
                        f"cross-entropy losses ({', '.join(BCE_LOSSES)}), not "
                        f"train.loss='{t.loss}'; set reg.label_smoothing=0")
    refuse_without("reg.class_weight", r.class_weight != 1.0 and m.conditioning != "acgan",
                   "model.conditioning=acgan (the classifier it weights)")
    norm = models.effective_d_norm(config.model)
    # Every penalty takes the input gradient of the sum of D's logits, which is each sample's
    # own gradient only when D treats samples independently: BatchNorm in training mode does not.
    if r.penalty in PENALTIES and norm == "batch":
        raise UserError(f"reg.penalty='{r.penalty}' needs per-sample critic gradients, but "
                        f"model.d_norm='{m.d_norm}' gives model.arch='{m.arch}' BatchNorm in D; "
                        "set model.d_norm=layer (WGAN-GP) or model.d_norm=none")
    if r.top_k_min is not None and t.loss == "relativistic_pairing":
        raise UserError("reg.top_k_min picks fakes by their own generator loss, but "
                        "train.loss='relativistic_pairing' pairs each fake with a real sample; "
                        "set reg.top_k_min=None or another train.loss")
    # every batch D sees: train.batch_size, and each of a growing model's per-level batches
    for stage in models.run_batching(config):
        batch = stage.per_step // t.n_critic
        if m.minibatch_std and batch % min(m.minibatch_std, batch):
            source = ("train.batch_size" if batch == t.batch_size
                      else "a batch of model.progan.batch_sizes")
            raise UserError(f"model.minibatch_std={m.minibatch_std} groups must divide "
                            f"{source}={batch}; pick a divisor, e.g. 4")


def check_labels(config: Config, num_classes: int, dataset: str) -> None:
    """A conditional model needs a labelled dataset with the model's number of classes."""
    m = config.model
    if m.conditioning == "none":
        return
    if num_classes == 0:
        raise UserError(f"model.conditioning='{m.conditioning}' needs class labels, but dataset "
                        f"'{dataset}' has none; set model.conditioning=none or use a labelled "
                        "dataset")
    if num_classes != m.num_classes:
        raise UserError(f"model.num_classes={m.num_classes} but dataset '{dataset}' has "
                        f"{num_classes} classes; set model.num_classes={num_classes}")
