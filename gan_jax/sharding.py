"""One data-parallel mesh: batches split along "data", parameters replicated.

Under `jax.jit` with these shardings XLA inserts the cross-device reductions itself, so a
BatchNorm mean over the batch axis is the mean over the *global* batch and the same step gives the
same result on 1 device, 8 devices or several hosts.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from gan_jax.errors import UserError

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over `devices` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,),
                         devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh, key: str = "train.batch_size") -> None:
    """Refuses a batch (`key` names its setting) that the mesh's devices cannot split."""
    devices = mesh.devices.size
    if batch_size % devices:
        raise UserError(f"{key}={batch_size} is not divisible by the {devices} "
                        f"devices; use a multiple of {devices}, e.g. "
                        f"{max(devices, batch_size // devices * devices)}")


def jit_train_step(step_fn: Callable, mesh: Mesh) -> Callable:
    """Compiles `step_fn(state, batch, key)` once, donating the state's buffers."""
    return jax.jit(step_fn,
                   in_shardings=(replicated(mesh), batch_sharded(mesh), replicated(mesh)),
                   out_shardings=(replicated(mesh), replicated(mesh)),
                   donate_argnums=0)


def put_process_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assembles global arrays from this process's slice of a batch (all of it on one host)."""
    sharding = batch_sharded(mesh)
    return {name: jax.make_array_from_process_local_data(sharding, value)
            for name, value in local_batch.items()}


def process_rows(global_batch_size: int, mesh: Mesh | None = None) -> slice:
    """The rows of each global batch that this process loads: those of the batch shards on its
    own devices, read from the sharding rather than assumed from the process index. All rows
    when `mesh` is None (one process)."""
    if mesh is None:
        return slice(0, global_batch_size)
    shards = batch_sharded(mesh).addressable_devices_indices_map((global_batch_size,))
    start = min(index[0].start or 0 for index in shards.values())
    stop = max(index[0].stop or global_batch_size for index in shards.values())
    if stop - start != global_batch_size // jax.process_count():  # never with a 1-D mesh
        raise ValueError(f"this process's batch rows {start}:{stop} are not contiguous")
    return slice(start, stop)


def replicate(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, replicated(mesh))
