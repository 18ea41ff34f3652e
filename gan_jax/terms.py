"""The loss terms of a GAN step: what each network minimises, one pure function per term.

A `Term` names the network whose parameters it updates ("d" or "g"), its weight, its interval
(1: part of the network's main update; k > 1: a separate update every k, StyleGAN2's lazy
regularisation) and a function of the step's `View`, returning (value, aux metrics). The
step (gan_jax.train) groups a network's terms by interval into phases (StyleGAN2-ADA's Dmain,
Dreg, Gmain, Greg) and minimises each phase's weighted sum.

A term reads only what it asks the view for: D's outputs on the real and the fake batch
(computed once per phase, on first use, real before fake, with D's BatchNorm statistics
threaded through the calls), a critic for input-gradient penalties, the parameters being
updated, and the train state (for averages a term keeps). Adding a loss or a regulariser is
one function here, its config field, and one line in `terms_for`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gan_jax import augment, penalties
from gan_jax.batching import images_before
from gan_jax.config import Config, RegConfig, refuse_without
from gan_jax.errors import UserError
from gan_jax.models import DiscriminatorOutput, run_batching

if TYPE_CHECKING:
    from gan_jax.train import Gan, TrainState

Aux = dict[str, jax.Array]
Variables = dict[str, Any]


class StepKeys(NamedTuple):
    """The named keys of one D update (and of the G update that shares its fakes)."""
    z: jax.Array
    fake_labels: jax.Array
    real: jax.Array
    fake: jax.Array
    penalty: jax.Array

    @classmethod
    def of(cls, key: jax.Array) -> "StepKeys":
        return cls(*jax.random.split(key, len(cls._fields)))


class StepInputs(NamedTuple):
    """One update's data: the real batch, G's fakes and the labels of both."""
    real: jax.Array
    labels: jax.Array | None
    fake: jax.Array
    fake_labels: jax.Array | None


class ViewKeys(NamedTuple):
    """The keys of D's calls in one phase: its real and fake batch, and a penalty's draws."""
    real: jax.Array
    fake: jax.Array
    penalty: jax.Array | None = None


def augment_probability(config: Config, slots: dict[str, Any]) -> jax.Array:
    """The probability of each DiffAugment op: ADA's, kept in the state, or augment.p."""
    if "augment_p" in slots:
        return slots["augment_p"]
    return jnp.asarray(config.augment.p, jnp.float32)


def generate(gan: "Gan", g_params: Any, g_model_state: Variables, z: jax.Array,
             labels: jax.Array | None) -> tuple[jax.Array, Variables]:
    """G(z, labels) in training mode; returns the images and G's updated model state."""
    return gan.generator.apply({"params": g_params, **g_model_state}, z, labels, train=True,
                               mutable=list(g_model_state))


def discriminate(gan: "Gan", d_params: Any, d_model_state: Variables, images: jax.Array,
                 labels: jax.Array | None, key: jax.Array,
                 augment_p: jax.Array) -> tuple[DiscriminatorOutput, Variables]:
    """D(augment(images)) in training mode; `key` drives the augmentation and dropout."""
    augment_key, dropout_key = jax.random.split(key)
    policy = augment.parse_policy(gan.config.augment.policy)
    if policy:
        images = augment.diff_augment(images, augment_key, policy, augment_p)
    return gan.discriminator.apply({"params": d_params, **d_model_state}, images, labels,
                                   train=True, mutable=list(d_model_state),
                                   rngs={"dropout": dropout_key})


class View:
    """What a phase's terms see, inside the function the phase differentiates.

    `params` are the parameters being updated (D's in a D phase, G's in a G phase). D's outputs
    on `inputs` are made on first use and kept, so terms share one forward pass per batch; each
    call threads D's model state (BatchNorm statistics), which the phase then keeps.
    """

    def __init__(self, gan: "Gan", state: "TrainState", params: Any, d_params: Any,
                 inputs: StepInputs, keys: ViewKeys):
        self.gan, self.config, self.state, self.params = gan, gan.config, state, params
        self.inputs, self.keys, self.d_params = inputs, keys, d_params
        self.d_model_state = state.d_model_state
        self.kept: dict[str, Any] = {}  # the new values of state slots, see `keep`
        self._outputs: dict[str, DiscriminatorOutput] = {}

    def keep(self, slot: str, value: Any) -> None:
        """A stateful term's new state (e.g. LeCam's anchors): the phase writes it into
        `TrainState.slots[slot]` after its update."""
        self.kept[slot] = value

    def discriminate(self, which: str, images: jax.Array, labels: jax.Array | None,
                     key: jax.Array) -> DiscriminatorOutput:
        """D(images), made once per phase under the name `which` (a term's own batch, e.g.
        transformed reals), with D's model state threaded like the real and fake batches'."""
        if which not in self._outputs:
            self._outputs[which], self.d_model_state = discriminate(
                self.gan, self.d_params, self.d_model_state, images, labels, key,
                augment_probability(self.config, self.state.slots))
        return self._outputs[which]

    def made(self, which: str) -> DiscriminatorOutput | None:
        """D's output on the "real" or "fake" batch if a term asked for it, else None."""
        return self._outputs.get(which)

    def real(self) -> DiscriminatorOutput:
        return self.discriminate("real", self.inputs.real, self.inputs.labels, self.keys.real)

    def fake(self) -> DiscriminatorOutput:
        return self.discriminate("fake", self.inputs.fake, self.inputs.fake_labels,
                                 self.keys.fake)

    def critic(self, labels: jax.Array | None, index: int = 0) -> penalties.Critic:
        """images -> D's logits at the current parameters and model state, which it leaves
        alone: the function whose input gradients a penalty takes. `index` picks its own
        augmentation and dropout draws (one per critic of a penalty)."""
        d_key = jax.random.split(self.keys.penalty)[0]
        if index:
            d_key = jax.random.fold_in(d_key, index)

        def logits(images):
            out, _ = discriminate(self.gan, self.d_params, self.d_model_state, images, labels,
                                  d_key, augment_probability(self.config, self.state.slots))
            return out.logits
        return logits


TermFunction = Callable[[View], tuple[jax.Array, Aux]]


class Term(NamedTuple):
    name: str
    network: str  # "d" or "g": whose parameters it updates
    loss: TermFunction
    weight: float = 1.0
    every: int = 1  # updates of its network per application; k > 1 is a lazy phase of its own
    of_params: bool = False  # a G term of G's parameters, not only of the fakes


# --- the discriminator's terms ----------------------------------------------------------------


def d_adversarial(view: View) -> tuple[jax.Array, Aux]:
    """The loss's discriminator side on D's real and fake logits."""
    real, fake = view.real().logits, view.fake().logits
    loss, aux = view.gan.loss.d(real, fake)
    return loss, aux | {"d_real_logit": real.mean(), "d_fake_logit": fake.mean()}


def d_drift(view: View) -> tuple[jax.Array, Aux]:
    """ProGAN's drift term E D(x_real)^2 (Karras et al. 2018, appendix A.1): a Wasserstein
    critic's loss is invariant to a constant shift of its outputs, and this keeps them near 0."""
    value = jnp.mean(jnp.square(view.real().logits))
    return value, {"d_drift": value}


def class_loss(class_logits: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(class_logits, labels))


def d_acgan_class(view: View) -> tuple[jax.Array, Aux]:
    """ACGAN (Odena et al. 2017): D classifies both real and fake images by their labels."""
    loss = (class_loss(view.real().class_logits, view.inputs.labels)
            + class_loss(view.fake().class_logits, view.inputs.fake_labels))
    return loss, {"d_class_loss": loss}


def d_penalty(view: View) -> tuple[jax.Array, Aux]:
    """reg.penalty on the (augmented) critic at fixed parameters (gan_jax.penalties)."""
    name, inputs = view.config.reg.penalty, view.inputs
    # WGAN-GP/DRAGAN/R1 act on real samples (and, for interpolates, on the real labels); R2
    # acts on fakes and their labels; R1 + R2 each side on its own samples' labels.
    critic = view.critic(inputs.fake_labels if name == "r2" else inputs.labels)
    fake_critic = view.critic(inputs.fake_labels, 1) if name == "r1_r2" else None
    value, aux = penalties.penalty(name, critic, inputs.real, inputs.fake,
                                   jax.random.split(view.keys.penalty)[1], fake_critic)
    metrics = {"penalty": value, "penalty_grad_norm": aux["grad_norm"]}
    if "fake_grad_norm" in aux:
        metrics["penalty_fake_grad_norm"] = aux["fake_grad_norm"]
    return value, metrics


def squared_distance(params: Any, averages: Any) -> jax.Array:
    return sum(jnp.sum(jnp.square(p - a)) for p, a in
               zip(jax.tree.leaves(params), jax.tree.leaves(averages)))


def d_historical_averaging(view: View) -> tuple[jax.Array, Aux]:
    """||theta_D - mean of past theta_D||^2 (Salimans et al. 2016)."""
    return squared_distance(view.params, view.state.slots["averages"]["d"]), {}


# --- the generator's terms ------------------------------------------------------------------


def g_adversarial(view: View) -> tuple[jax.Array, Aux]:
    """The loss's generator side on D's logits of the fakes (and of the real batch, for a
    relativistic loss: D runs on it in G's update too)."""
    if view.gan.loss.g_sees_real:
        fake = view.fake().logits
        return view.gan.loss.g(fake, view.real().logits)
    return view.gan.loss.g(view.fake().logits)


def top_k_count(config: Config, images_seen: jax.Array, batch: int) -> jax.Array:
    """Sinha et al.'s k after `images_seen` real images (an integer array), for `batch` fakes:
    the batch times top_k_decay per completed epoch, at least top_k_min of it (rounded down,
    at least 1). k changes at each epoch's end, as in the authors' code and StudioGAN's
    (`adjust_k` once per epoch), not within one: otherwise k would be batch - 1 from step 1."""
    r = config.reg
    epochs = jnp.floor(images_seen.astype(jnp.float32) / (1000.0 * r.top_k_epoch_kimg))
    fraction = jnp.maximum(r.top_k_decay ** epochs, r.top_k_min)
    return jnp.maximum(jnp.floor(fraction * batch), 1.0)


def g_adversarial_top_k(view: View) -> tuple[jax.Array, Aux]:
    """Top-k training (Sinha et al. 2020): the generator loss of the k fakes D scores highest
    only; the others get no gradient. Every generator loss here is a mean over samples, so each
    sample's value is the loss of that sample alone."""
    logits = view.fake().logits
    per_sample = jax.vmap(lambda logit: view.gan.loss.g(logit[None])[0])(logits)
    k = top_k_count(view.config, images_before(run_batching(view.config), view.state.step, jnp),
                    logits.shape[0])
    rank = jnp.argsort(jnp.argsort(-logits))  # 0 for the fake D scores highest
    chosen = (rank < k).astype(per_sample.dtype)
    return jnp.sum(chosen * per_sample) / k, {"top_k": k}


def g_acgan_class(view: View) -> tuple[jax.Array, Aux]:
    """ACGAN: G makes fakes that D classifies as the labels they were drawn for."""
    loss = class_loss(view.fake().class_logits, view.inputs.fake_labels)
    return loss, {"g_class_loss": loss}


def g_feature_matching(view: View) -> tuple[jax.Array, Aux]:
    """||E f(real) - E f(fake)||^2 on D's last features (Salimans et al. 2016), real side fixed.
    """
    fake = view.fake().features
    gap = jnp.mean(jax.lax.stop_gradient(view.real().features), 0) - jnp.mean(fake, 0)
    matching = jnp.sum(jnp.square(gap))
    return matching, {"feature_matching": matching}


def g_historical_averaging(view: View) -> tuple[jax.Array, Aux]:
    """||theta_G - mean of past theta_G||^2, on G's parameters directly."""
    return squared_distance(view.params, view.state.slots["averages"]["g"]), {}


def d_lecam(view: View) -> tuple[jax.Array, Aux]:
    """LeCam (Tseng et al. 2021): E relu(D(x) - a_F)^2 + E relu(a_R - D(G(z)))^2.

    The anchors a_R and a_F are moving averages (decay reg.lecam_decay) of D's mean real and
    fake outputs, this batch included, starting at the first batch's means, as the authors'
    BigGAN code keeps them; the slot "lecam" holds them between updates.
    """
    real, fake = view.real().logits, view.fake().logits
    slot = view.state.slots["lecam"]
    decay = jnp.where(slot["updates"] > 0, view.config.reg.lecam_decay, 0.0)
    anchor_real, anchor_fake = (decay * slot[name] + (1 - decay) * jax.lax.stop_gradient(
        jnp.mean(logits)) for name, logits in (("real", real), ("fake", fake)))
    view.keep("lecam", {"real": anchor_real, "fake": anchor_fake,
                        "updates": slot["updates"] + 1})
    value = (jnp.mean(jnp.square(jax.nn.relu(real - anchor_fake)))
             + jnp.mean(jnp.square(jax.nn.relu(anchor_real - fake))))
    return value, {"lecam": value, "lecam_anchor_real": anchor_real,
                   "lecam_anchor_fake": anchor_fake}


def _consistency(view: View, side: str) -> tuple[jax.Array, Aux]:
    images, labels, output, key = (
        (view.inputs.real, view.inputs.labels, view.real(), view.keys.real) if side == "real"
        else (view.inputs.fake, view.inputs.fake_labels, view.fake(), view.keys.fake))
    transform_key, d_key = jax.random.split(jax.random.fold_in(key, 1))
    transformed = view.discriminate(f"{side}_transformed",
                                    augment.consistency_transform(images, transform_key),
                                    labels, d_key)
    value = jnp.mean(jnp.square(output.logits - transformed.logits))
    return value, {f"consistency_{side}": value}


def d_consistency_real(view: View) -> tuple[jax.Array, Aux]:
    """bCR's real side (Zhao et al. 2021): E (D(x) - D(T(x)))^2, T a flip and a translation
    (augment.consistency_transform); D learns to give both the same logit."""
    return _consistency(view, "real")


def d_consistency_fake(view: View) -> tuple[jax.Array, Aux]:
    """bCR's fake side: E (D(G(z)) - D(T(G(z))))^2, on the detached fakes."""
    return _consistency(view, "fake")


def orthogonality(params: Any) -> jax.Array:
    """1/2 sum over G's weight matrices W (out x in: a kernel's output filters as rows) of
    ||W W^T * (1 - I)||_F^2, whose gradient 2 (W W^T * (1 - I)) W is BigGAN-PyTorch's
    `utils.ortho`. Biases, BatchNorm gains and class embeddings (BigGAN leaves its shared
    embedding out) have no rows to make orthogonal."""
    total = jnp.zeros((), jnp.float32)
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if leaf.ndim < 2 or "embedding" in jax.tree_util.keystr(path):
            continue
        rows = leaf.reshape(-1, leaf.shape[-1]).T  # Flax kernels end with the output axis
        gram = rows @ rows.T
        total += 0.5 * jnp.sum(jnp.square(gram * (1.0 - jnp.eye(gram.shape[0]))))
    return total


def g_orthogonal(view: View) -> tuple[jax.Array, Aux]:
    """BigGAN's orthogonal regularisation of G (Brock et al. 2019, section 3.1): the filters of
    each layer pushed towards orthogonality, their norms left free."""
    value = orthogonality(view.params)
    return value, {"g_orthogonality": value}


def check_reg_config(r: RegConfig) -> None:
    """The reg section's own rules: one critic constraint, a lazy interval only for a penalty,
    a term's settings only with the term."""
    if r.clip is not None and r.penalty != "none":
        raise UserError(f"reg.clip={r.clip} and reg.penalty='{r.penalty}' both constrain the "
                        "critic (WGAN vs WGAN-GP); keep one: set reg.clip=None or "
                        "reg.penalty=none")
    defaults = RegConfig()
    refuse_without("reg.lecam_decay", r.lecam_decay != defaults.lecam_decay
                   and not r.lecam_weight, "reg.lecam_weight (the LeCam term it averages for)")
    for key in ("top_k_decay", "top_k_epoch_kimg"):
        refuse_without(f"reg.{key}", getattr(r, key) != getattr(defaults, key)
                       and r.top_k_min is None, "reg.top_k_min (top-k training)")
    if r.penalty_every > 1 and r.penalty == "none":
        raise UserError(f"reg.penalty_every={r.penalty_every} (lazy regularisation) needs a "
                        "penalty, but reg.penalty='none'; set reg.penalty or "
                        "reg.penalty_every=1")


def terms_for(config: Config) -> tuple[Term, ...]:
    """The configured terms of both networks, in the order their values are summed."""
    r, conditioning = config.reg, config.model.conditioning
    d_terms = [Term("adversarial", "d", d_adversarial)]
    g_terms = [Term("adversarial", "g", g_adversarial if r.top_k_min is None
                    else g_adversarial_top_k)]
    if conditioning == "acgan":
        d_terms.append(Term("acgan_class", "d", d_acgan_class, r.class_weight))
        g_terms.append(Term("acgan_class", "g", g_acgan_class, r.class_weight))
    if r.penalty != "none":
        d_terms.append(Term("penalty", "d", d_penalty, r.penalty_weight, r.penalty_every))
    if r.drift:
        d_terms.append(Term("drift", "d", d_drift, r.drift))
    if r.historical_averaging:
        d_terms.append(Term("historical_averaging", "d", d_historical_averaging,
                            r.historical_averaging))
        g_terms.append(Term("historical_averaging", "g", g_historical_averaging,
                            r.historical_averaging, of_params=True))
    if r.lecam_weight:
        d_terms.append(Term("lecam", "d", d_lecam, r.lecam_weight))
    if r.consistency_real:
        d_terms.append(Term("consistency_real", "d", d_consistency_real, r.consistency_real))
    if r.consistency_fake:
        d_terms.append(Term("consistency_fake", "d", d_consistency_fake, r.consistency_fake))
    if r.g_orthogonal:
        g_terms.append(Term("orthogonal", "g", g_orthogonal, r.g_orthogonal, of_params=True))
    if r.feature_matching:
        g_terms.append(Term("feature_matching", "g", g_feature_matching, r.feature_matching))
    return (*d_terms, *g_terms)
