"""Orbax checkpoints of the train state in `<workdir>/checkpoints/<step>/`.

Orbax writes each checkpoint to `<step>.orbax-checkpoint-tmp` and renames it when complete, so a
run killed mid-save (kill -9, preemption, a full disk) never leaves a half-written checkpoint
that would be taken as the latest; the next run deletes the unfinished folder (itself, before
anything else is written: orbax's own clean-up runs in the background in some versions). Older
checkpoints are deleted only after a newer one is complete. Saves are asynchronous: training
continues while the previous state is written.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import NoReturn

import jax
import orbax.checkpoint as ocp
# Orbax's default jax.Array handler is built with this store (its per-array metadata files);
# it has no public name in orbax 0.12.
from orbax.checkpoint._src.metadata.array_metadata_store import Store as ArrayMetadataStore

from gan_jax.errors import UserError
from gan_jax.files import storage_errno
from gan_jax.train import TrainState


def has_checkpoint(directory: Path) -> bool:
    """Whether `directory` holds a finished checkpoint, without creating anything: orbax's
    manager creates its directory, and input checks must write nothing. Orbax names finished
    checkpoints by their step and unfinished ones with a temporary suffix."""
    directory = Path(directory)
    return latest_checkpoint_step(directory) is not None


def checkpoint_steps(directory: Path) -> list[int]:
    """The steps of the finished checkpoints, ascending, read without orbax (and without
    writing): orbax names a checkpoint by its step once it is complete."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def latest_checkpoint_step(directory: Path) -> int | None:
    """The newest finished checkpoint's step."""
    return max(checkpoint_steps(directory), default=None)


def ocp_layout(x):
    """Shape, dtype and sharding of an array: what `Checkpointer.restore` lays a state out by."""
    return ocp.utils.to_shape_dtype_struct(x)


# Orbax's name for a checkpoint being written: `<step>.orbax-checkpoint-tmp`, followed by a
# timestamp in some versions.
UNFINISHED_PATTERN = "*.orbax-checkpoint-tmp*"


def remove_unfinished_checkpoints(directory: Path) -> list[Path]:
    """Deletes the temporary folders of checkpoints whose writing never completed (a run killed
    mid-save) and returns them. Only process 0 deletes: the folder is shared by all hosts."""
    directory = Path(directory)
    if jax.process_index() != 0 or not directory.is_dir():
        return []
    unfinished = sorted(directory.glob(UNFINISHED_PATTERN))
    for path in unfinished:
        shutil.rmtree(path)
    return unfinished


def _whole_arrays_on_cpu() -> None:
    """On the CPU backend, each replicated array is written whole by its first device.

    Orbax's default (replica-parallel writes; off only where JAX_PLATFORMS names gpu or cuda)
    hands each replica a slice of every replicated array, an eager XLA slice compiled per array
    shape and per device: at a CPU run's first save over 8 devices, 88 compilations of about
    half a second for a small GAN's state. CPU devices share one host memory, so the slices save
    no copying (several CPU processes now leave the writing to the first). This replaces
    orbax's process-wide handler for jax.Array (StandardCheckpointHandler takes no registry)
    with one built as orbax builds its default but for that option: the same arrays, stored in
    one chunk instead of one per replica; checkpoints written either way read either way."""
    if jax.default_backend() == "cpu":
        ocp.type_handlers.register_type_handler(
            jax.Array, ocp.type_handlers.ArrayHandler(
                use_replica_parallel=False, array_metadata_store=ArrayMetadataStore()),
            override=True)


class Checkpointer:
    """The checkpoints of one run. `read_only` (evaluation of a run that may still be training)
    creates and deletes nothing, not even the temporary folder of a save in progress."""

    def __init__(self, directory: Path, keep: int = 3, read_only: bool = False):
        self.directory = Path(directory).absolute()
        _quiet_storage_errors()
        _whole_arrays_on_cpu()
        if not read_only:
            # Synchronously, before orbax starts: whether orbax's own clean-up has finished by
            # the time the run writes depends on its version and on timing.
            remove_unfinished_checkpoints(self.directory)
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=None if read_only else keep, create=not read_only,
                read_only=read_only, save_interval_steps=0 if read_only else 1,
                cleanup_tmp_directories=False),
            # Registered up front, so that a checkpoint's metadata can be read before any
            # restore (orbax only knows how to read an item it has saved or restored).
            item_handlers=ocp.StandardCheckpointHandler())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def restore_latest(self, like: TrainState) -> TrainState | None:
        """The latest checkpoint, laid out (shapes, dtypes, shardings) like `like`; or None."""
        step = self.latest_step()
        return None if step is None else self.restore(step, like)

    def restore(self, step: int, like: TrainState) -> TrainState:
        """The checkpoint of `step`, laid out like `like` (arrays or ShapeDtypeStructs).

        A checkpoint whose tree or shapes differ from `like` (another model or gan_jax version)
        or whose files are damaged is a UserError naming the checkpoint; nothing is deleted.
        The tree and shapes are compared from the checkpoint's metadata before any array is
        read: a read that fails part-way leaves orbax's pending reads to be collected later,
        as warnings in whatever runs next.
        """
        try:
            stored = _leaf_shapes(self._manager.metadata(step).item_metadata.tree)
        except Exception as error:  # no metadata, or unreadable: the checkpoint is damaged
            self._refuse(step, error)
        layouts = ((like, lambda restored: restored),
                   (_legacy_layout(like), lambda restored: _from_legacy(restored, like)))
        for layout, convert in layouts:
            if _leaf_shapes(layout) == stored:
                try:
                    return convert(self._restore(step, layout))
                except Exception as error:  # orbax raises ValueError, KeyError, OSError...
                    self._refuse(step, error)
        self._refuse(step, ValueError(_first_difference(stored, _leaf_shapes(like))))

    def _refuse(self, step: int, error: Exception) -> NoReturn:
        if storage_errno(error) is not None:
            raise error
        first_line = (str(error).strip().splitlines() or [""])[0][:300]
        raise UserError(
            f"checkpoint {self.directory / str(step)} does not fit this model "
            f"({type(error).__name__}: {first_line}); it was written by another model, "
            "config or gan_jax version, or is damaged: resume it with the config and "
            "version that wrote it, use a new --workdir, or move that step's folder away "
            "to resume from the one before") from None

    def _restore(self, step: int, like):
        abstract = jax.tree.map(ocp_layout, like)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def save(self, state: TrainState) -> None:
        step = int(state.step)
        if step not in self._manager.all_steps():
            self._check_space(state, step)
            self._manager.save(step, args=ocp.args.StandardSave(state), force=True)

    def _check_space(self, state: TrainState, step: int) -> None:
        """Refuses a save the disk cannot hold before anything is written: orbax would fail
        part-way, in background threads. The state's size (checkpoints are compressed, so at
        most that) plus 1 MiB for metadata; a newer checkpoint is written before an old one
        is deleted."""
        needed = sum(x.nbytes for x in jax.tree.leaves(state)) + 2**20
        free = shutil.disk_usage(self.directory).free
        if free < needed:
            # The save before this one may still be finishing, and deleting the checkpoint it
            # replaces (keep_checkpoints) in the background: count the space it frees.
            self._manager.wait_until_finished()
            free = shutil.disk_usage(self.directory).free
        if free < needed:
            latest = self.latest_step()
            resume = ("" if latest is None else
                      f", then run the same command to resume from step {latest}")
            raise UserError(f"the checkpoint of step {step} needs up to {needed / 2**20:.1f} "
                            f"MiB but {self.directory} has {free / 2**20:.1f} MiB free; free "
                            f"some space{resume}")

    def wait(self) -> None:
        """Blocks until every started save is complete on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


# Until 2026-12 the state kept its stateful parts in fields of their own, present (as {}) even
# when unused: ema_params and param_averages, and augment_p always. Checkpoints written then
# restore into today's layout, where they are `slots` and exist only when configured.
_LEGACY_SLOTS = {"ema": "ema_params", "averages": "param_averages", "augment_p": "augment_p"}


def _leaf_shapes(tree) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Every array's shape by its path, the path's keys as strings: a saved dataclass or named
    tuple comes back from the metadata as a dict, a tuple's items keep their index."""
    def name(key) -> str:
        for field in ("key", "name", "idx"):  # DictKey, GetAttrKey, SequenceKey
            if hasattr(key, field):
                return str(getattr(key, field))
        return str(key)

    return {tuple(map(name, path)): tuple(leaf.shape)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _first_difference(stored: dict, expected: dict) -> str:
    """The first array the checkpoint and the model disagree on, in words."""
    for path in sorted(stored.keys() | expected.keys()):
        there, here = stored.get(path), expected.get(path)
        if there != here:
            where = ".".join(path)
            if there is None:
                return f"the model has {where} {here}, the checkpoint has none"
            if here is None:
                return f"the checkpoint has {where} {there}, the model has none"
            return f"{where} is {there} in the checkpoint, {here} in the model"
    return "the same arrays"  # unreachable when the two differ


def _legacy_layout(like: TrainState) -> dict:
    fields = {name: getattr(like, name) for name in like.__dataclass_fields__ if name != "slots"}
    return fields | {"ema_params": like.slots.get("ema", {}),
                     "param_averages": like.slots.get("averages", {}),
                     "augment_p": jax.ShapeDtypeStruct((), "float32")}


def _from_legacy(restored: dict, like: TrainState) -> TrainState:
    fields = {name: restored[name] for name in like.__dataclass_fields__ if name != "slots"}
    return like.replace(**fields, slots={name: restored[_LEGACY_SLOTS[name]]
                                         for name in like.slots})


_READ_ONLY_NOTICE = "Given directory is read only=%s"  # orbax's warning, on every evaluation


class _DropStorageErrors(logging.Filter):
    """Orbax logs a failed background save (full or read-only disk) with tracebacks before the
    error reaches the training loop, which reports it as one line; drop those log records, and
    its warning on every read-only open (an evaluation), which says what was asked for."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == _READ_ONLY_NOTICE:  # what Checkpointer(read_only=True) asked for
            return False
        error = record.exc_info[1] if record.exc_info else None
        return storage_errno(error) is None and storage_errno(
            Exception(record.getMessage())) is None


def _quiet_storage_errors() -> None:
    for name in ("absl", "asyncio"):  # orbax's threads, and its futures nobody awaited
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropStorageErrors) for f in logger.filters):
            logger.addFilter(_DropStorageErrors())
