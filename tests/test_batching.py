"""The run's clock (gan_jax.batching): real images before each step, and the loop's intervals."""

import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import batching
from gan_jax.batching import BatchStage


@pytest.mark.parametrize("per_step,kimg", [(64, 1.2), (64, 0.001), (48, 0.96), (7, 0.05)])
def test_with_one_batch_an_interval_is_every_kth_step(per_step, kimg):
    clock = batching.constant(per_step)
    k = batching.steps_for_kimg(kimg, per_step)
    every = batching.interval_images(clock, kimg)
    assert [s for s in range(1, 400) if batching.is_due(clock, s, every)] == list(
        range(k, 400, k))
    assert batching.steps_to_show(clock, kimg * 1000) == k


def test_a_changing_batch_counts_each_stage_at_its_own_size():
    clock = (BatchStage(0, 0, 16), BatchStage(3, 48, 8), BatchStage(7, 80, 32))
    shown = [int(batching.images_before(clock, s)) for s in range(10)]
    assert shown == [0, 16, 32, 48, 56, 64, 72, 80, 112, 144]
    assert [batching.stage_of_step(clock, s).per_step for s in (0, 2, 3, 6, 7, 50)] == [
        16, 16, 8, 8, 32, 32]
    assert [batching.steps_to_show(clock, n) for n in (1, 48, 49, 80, 81)] == [1, 3, 4, 7, 8]
    # Intervals are multiples of every batch's common divisor; a step that crosses two
    # multiples is due once.
    every = batching.interval_images(clock, 0.012)
    assert every == 16
    assert [s for s in range(1, 10) if batching.is_due(clock, s, every)] == [1, 2, 3, 5, 7, 8, 9]
    # jax.numpy inside the step gives the same counts.
    np.testing.assert_array_equal(batching.images_before(clock, jnp.arange(10), jnp), shown)
