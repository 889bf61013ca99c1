"""Per-epoch seeds for the data loader workers.

The training transforms (mmcv's ``RandomFlip``, ``YOLOHSVRandomAug``) draw
from ``np.random`` in the process that runs them. mmengine's default
``worker_init_fn`` seeds each worker from ``(seed, rank, worker_id)`` only,
so with workers re-created every epoch (``persistent_workers=False``) every
epoch repeats the draws of the first, and with persistent workers a resumed
run continues from other RNG states than the uninterrupted one.

Here each worker's RNGs (``random``, ``np.random``, ``torch``) are seeded
from ``(seed, epoch, rank, worker_id)``:

- ``EpochSeedHook`` writes ``(seed, rank, epoch)`` into the training
  dataset's :class:`WorkerSeedState` (shared memory) before each epoch,
  that is before the loader starts or wakes its workers;
- :func:`epoch_worker_init_fn` (FUNCTIONS ``yolo_losses.epoch_worker_init_fn``,
  set as ``train_dataloader.worker_init_fn``; mmengine's ``build_dataloader``
  calls it in each new worker) seeds from it;
- a persistent worker lives on into the next epoch: the dataset's
  ``__getitem__`` (:class:`EpochSeededMixin`) sees the new epoch in the
  shared state and reseeds the same way before its first sample.

So the draws of epoch ``e`` depend on ``(seed, e, rank, worker_id)`` only:
the same with persistent workers or not, and after a resume.
"""
from __future__ import annotations

import random
import warnings
from typing import Any, Iterator, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import get_worker_info

from ..registry import FUNCTIONS


class WorkerSeedState:
    """``(seed, rank, epoch)`` of a training run in shared memory.

    Created with the dataset in the main process, so loader workers (forked
    or spawned) share its storage and see values written later. Each process
    also remembers the epoch it last seeded its RNGs for (``seeded_epoch``,
    a plain attribute: not shared).
    """

    def __init__(self) -> None:
        self.values = torch.full((3,), -1, dtype=torch.int64).share_memory_()
        self.seeded_epoch: Optional[int] = None

    def set(self, seed: int, rank: int, epoch: int) -> None:
        for name, value in (('seed', seed), ('rank', rank), ('epoch', epoch)):
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f'{name} must be an int >= 0, got {value!r}')
        self.values.copy_(torch.tensor([int(seed), int(rank), int(epoch)]))

    def get(self) -> Optional[Tuple[int, int, int]]:
        """``(seed, rank, epoch)``, or None until :meth:`set` was called."""
        seed, rank, epoch = (int(v) for v in self.values)
        return None if seed < 0 else (seed, rank, epoch)


def worker_seed(seed: int, epoch: int, rank: int, worker_id: int) -> int:
    """The 63-bit seed of one loader worker in one epoch.

    Through numpy's ``SeedSequence`` (spawn key ``(epoch, rank,
    worker_id)``), so nearby tuples give unrelated streams, and none
    coincides with the main-process seed ``EpochSeedHook`` derives from
    ``(seed, epoch)``.
    """
    sequence = np.random.SeedSequence(int(seed),
                                      spawn_key=(int(epoch), int(rank),
                                                 int(worker_id)))
    low, high = sequence.generate_state(2, dtype=np.uint32)
    return (int(high) << 31 | int(low) >> 1) & (2**63 - 1)


def seed_worker_rngs(value: int) -> None:
    """Seed ``random``, ``np.random`` and ``torch`` of this process."""
    random.seed(value)
    np.random.seed([value & 0xFFFFFFFF, value >> 32])
    torch.manual_seed(value)


def _states(dataset: Any) -> Iterator[WorkerSeedState]:
    """The seed states of ``dataset`` and of datasets it wraps (mmengine's
    ``ConcatDataset``, ``RepeatDataset``, ``ClassBalancedDataset``,
    sliced datasets)."""
    state = getattr(dataset, 'worker_seed_state', None)
    if isinstance(state, WorkerSeedState):
        yield state
    inner = getattr(dataset, 'dataset', None)
    if inner is not None and inner is not dataset:
        yield from _states(inner)
    for inner in getattr(dataset, 'datasets', None) or ():
        yield from _states(inner)


def set_worker_seed(dataset: Any, seed: int, rank: int, epoch: int) -> int:
    """Write ``(seed, rank, epoch)`` into every seed state of ``dataset``.

    Call in the main process before the epoch's iteration starts. Returns
    how many states were set (0: the dataset cannot seed its workers per
    epoch).
    """
    count = 0
    for state in _states(dataset):
        state.set(seed, rank, epoch)
        count += 1
    return count


def _reseed(state: WorkerSeedState, worker_id: int) -> None:
    values = state.get()
    if values is None:
        return
    seed, rank, epoch = values
    seed_worker_rngs(worker_seed(seed, epoch, rank, worker_id))
    state.seeded_epoch = epoch


@FUNCTIONS.register_module()
def epoch_worker_init_fn(worker_id: int) -> None:
    """``worker_init_fn`` of the training loader: seeds the new worker from
    ``(seed, epoch, rank, worker_id)``.

    Config: ``train_dataloader = dict(..., worker_init_fn=dict(
    type='yolo_losses.epoch_worker_init_fn'))``; mmengine's
    ``build_dataloader`` passes it to the ``DataLoader``. The values come
    from the dataset's :class:`WorkerSeedState`, which ``EpochSeedHook``
    sets before each epoch. Without them (a dataset without the state, or
    no ``EpochSeedHook``) the worker keeps PyTorch's own seeding, which
    varies per epoch but does not survive a resume.
    """
    info = get_worker_info()
    if info is None:
        raise RuntimeError('epoch_worker_init_fn runs in data loader workers '
                           'only')
    states = list(_states(info.dataset))
    if not states:
        if worker_id == 0:
            warnings.warn(
                f'epoch_worker_init_fn: {type(info.dataset).__name__} has no '
                'worker_seed_state (see yolo_losses.datasets.seeding); the '
                'workers keep PyTorch\'s seeding', RuntimeWarning)
        return
    for state in states:
        _reseed(state, worker_id)


class EpochSeededMixin:
    """Dataset side of the per-epoch worker seeds (before mmengine's
    ``BaseDataset`` in the bases).

    Holds ``worker_seed_state`` and, in a worker that
    :func:`epoch_worker_init_fn` seeded, reseeds when the epoch in the
    shared state has moved on: a persistent worker's first sample of each
    new epoch. In the main process (``num_workers=0``) it does nothing;
    ``EpochSeedHook`` seeds that process itself.
    """

    def _init_worker_seed_state(self) -> None:
        self.worker_seed_state = WorkerSeedState()

    def __getitem__(self, idx: int) -> Any:
        state = getattr(self, 'worker_seed_state', None)
        if state is not None and state.seeded_epoch is not None:
            values = state.get()
            if values is not None and values[2] != state.seeded_epoch:
                info = get_worker_info()
                if info is not None:
                    _reseed(state, info.id)
        return super().__getitem__(idx)
