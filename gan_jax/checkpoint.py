"""Orbax checkpoints of the train state in `<workdir>/checkpoints/<step>/`.

Orbax writes each checkpoint to a temporary folder and renames it when complete, so a run killed
mid-save never leaves a half-written checkpoint that would be taken as the latest. Saves are
asynchronous: training continues while the previous state is written.
"""

from __future__ import annotations

from pathlib import Path

import jax
import orbax.checkpoint as ocp

from gan_jax.train import TrainState


def has_checkpoint(directory: Path) -> bool:
    """Whether `directory` holds a finished checkpoint, without creating anything: orbax's
    manager creates its directory, and input checks must write nothing. Orbax names finished
    checkpoints by their step and unfinished ones with a temporary suffix."""
    directory = Path(directory)
    return directory.is_dir() and any(p.name.isdigit() for p in directory.iterdir())


class Checkpointer:
    def __init__(self, directory: Path, keep: int = 3):
        self._manager = ocp.CheckpointManager(
            Path(directory).absolute(),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def restore_latest(self, like: TrainState) -> TrainState | None:
        """The latest checkpoint, laid out (shapes, dtypes, shardings) like `like`; or None."""
        step = self.latest_step()
        return None if step is None else self.restore(step, like)

    def restore(self, step: int, like: TrainState) -> TrainState:
        """The checkpoint of `step`, laid out like `like`."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def save(self, state: TrainState) -> None:
        step = int(state.step)
        if step not in self._manager.all_steps():
            self._manager.save(step, args=ocp.args.StandardSave(state), force=True)

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
