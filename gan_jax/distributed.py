"""Joining a multi-process (multi-host) JAX job before anything else touches the devices.

    initialize(coordinator="10.0.0.1:1234", num_processes=4, process_id=0)
    initialize(auto=True)   # Slurm, Open MPI or Cloud TPU: JAX reads it from the environment

After it, `jax.devices()` lists every process's devices; gan_jax's mesh spans them all, every
process loads only its own rows of each global batch, and process 0 alone writes logs and
samples (checkpoints are written by all, through orbax). Without a coordinator or `auto` this
does nothing: one process uses its local devices.
"""

from __future__ import annotations

import jax

from gan_jax.errors import UserError


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, auto: bool = False) -> None:
    if coordinator is None and not auto:
        if num_processes is not None or process_id is not None:
            raise UserError("--num-processes and --process-id need --coordinator-address "
                            "HOST:PORT (the address of process 0)")
        return
    if coordinator is not None:
        _check_explicit(coordinator, num_processes, process_id)
    try:
        jax.distributed.initialize(coordinator_address=coordinator,
                                   num_processes=num_processes, process_id=process_id)
    except ValueError as error:  # what JAX raises when no cluster is detected
        raise UserError(f"--distributed found no cluster to join ({error}); outside Slurm, "
                        "Open MPI or a Cloud TPU pass --coordinator-address, --num-processes "
                        "and --process-id") from None


def _check_explicit(coordinator: str, num_processes: int | None,
                    process_id: int | None) -> None:
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--coordinator-address '{coordinator}' is not HOST:PORT, "
                        "e.g. 10.0.0.1:1234 (process 0's address and a free port)")
    if num_processes is None or process_id is None:
        raise UserError("--coordinator-address needs --num-processes and --process-id "
                        "(this process's index, 0 on the coordinator)")
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise UserError(f"--process-id {process_id} must be in [0, --num-processes) with "
                        f"--num-processes {num_processes} >= 1")
