"""Hooks of the training stack: loss/mAP curves, throughput, epoch seeding."""
from __future__ import annotations

import json
import os.path as osp
import random
import time
from typing import Dict, List, Optional

import numpy as np
from mmengine.dist import get_world_size, is_main_process
from mmengine.hooks import Hook

from ..registry import HOOKS
from .plotting import plot_runs

CURVES_JSON = 'curves.json'
CURVES_PNG = 'curves.png'


@HOOKS.register_module()
class CurvesHook(Hook):
    """Records per-epoch loss components and val metrics; draws them.

    Every epoch the mean of each training loss component (the ``loss*``
    scalars of the log) and the validation metrics named in ``metrics`` are
    appended to ``WORK_DIR/curves.json``; after training, ``curves.png``
    plots each against the epoch. The history travels in checkpoints, so a
    resumed run draws the whole curve.

    Args:
        metrics: validation metric keys to record.
        out_file: PNG file name in the work dir.
    """

    priority = 'LOW'

    def __init__(self, metrics=('coco/bbox_mAP', 'coco/bbox_mAP_50'),
                 out_file: str = CURVES_PNG) -> None:
        self.metrics = tuple(metrics)
        self.out_file = out_file
        self.history: Dict[str, List] = dict(train=[], val=[])
        self._sums: Dict[str, float] = {}
        self._count = 0

    def before_train_epoch(self, runner) -> None:
        self._sums, self._count = {}, 0

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not outputs:
            return
        hub = runner.message_hub
        for key in outputs:
            if key.startswith('loss'):
                # RuntimeInfoHook already turned the tensor into a float
                value = hub.get_scalar(f'train/{key}').current()
                self._sums[key] = self._sums.get(key, 0.0) + float(value)
        self._count += 1

    def after_train_epoch(self, runner) -> None:
        if self._count:
            row = {key: total / self._count for key, total in self._sums.items()}
            row['epoch'] = runner.epoch + 1
            self.history['train'].append(row)
        self._write_json(runner)

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        if not metrics:
            return
        row = {key: float(metrics[key]) for key in self.metrics if key in metrics}
        if row:
            row['epoch'] = runner.epoch
            self.history['val'] = [r for r in self.history['val']
                                   if r['epoch'] != row['epoch']] + [row]
            self._write_json(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})['curves'] = json.dumps(self.history)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get('meta', {}).get('curves')
        if saved and getattr(runner, '_resume', False):
            self.history = json.loads(saved)
            epoch = checkpoint.get('meta', {}).get('epoch', 0)
            # the val of the checkpoint's own epoch ran after it was saved
            previous = osp.join(runner.work_dir, CURVES_JSON)
            if osp.isfile(previous):
                with open(previous, encoding='utf-8') as handle:
                    old = json.load(handle)
                known = {r['epoch'] for r in self.history['val']}
                self.history['val'] += [r for r in old.get('val', [])
                                        if r['epoch'] <= epoch
                                        and r['epoch'] not in known]

    def after_train(self, runner) -> None:
        if not is_main_process():
            return
        self._write_json(runner)
        plot_runs([runner.work_dir], osp.join(runner.work_dir, self.out_file))
        runner.logger.info(
            f'curves saved to {osp.join(runner.work_dir, self.out_file)}')

    def _write_json(self, runner) -> None:
        if is_main_process():
            with open(osp.join(runner.work_dir, CURVES_JSON), 'w',
                      encoding='utf-8') as handle:
                json.dump(self.history, handle)


@HOOKS.register_module()
class ThroughputHook(Hook):
    """Logs training throughput as ``img_per_s`` (all ranks together).

    Measured from one iteration's end to the next, so data loading counts.
    """

    priority = 'NORMAL'

    def __init__(self) -> None:
        self._last: Optional[float] = None

    def before_train_epoch(self, runner) -> None:
        self._last = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        now = time.perf_counter()
        if self._last is not None and isinstance(data_batch, dict):
            inputs = data_batch.get('inputs')
            if inputs is not None and hasattr(inputs, 'shape'):
                images = int(inputs.shape[0]) * get_world_size()
                runner.message_hub.update_scalar(
                    'train/img_per_s', images / max(now - self._last, 1e-9))
        self._last = now


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Seeds the augmentation of epoch ``e`` from ``(seed, e)``, in the main
    process and in the data loader workers.

    The data transforms (mmcv's and ours) draw from ``np.random``. mmengine
    seeds the main process once per run and each loader worker from
    ``(seed, rank, worker_id)`` only, so workers re-created every epoch
    repeat the first epoch's draws, and a resumed run continues from other
    RNG states than the uninterrupted one. Before each epoch this hook

    - reseeds the main process's ``np.random`` and ``random`` (the data of
      ``num_workers=0``) from ``(seed, epoch)``;
    - writes ``(seed, rank, epoch)`` into the training dataset's
      ``worker_seed_state``, from which ``yolo_losses.epoch_worker_init_fn``
      (the loader's ``worker_init_fn``) and, for persistent workers, the
      dataset itself seed each worker from ``(seed, epoch, rank, worker_id)``
      (see :mod:`yolo_losses.datasets.seeding`).

    Augmentation then depends on ``(seed, epoch, rank, worker)`` only, with
    persistent workers or not, and resume reproduces the same training.
    Written for epoch-based loops (mmengine's iteration-based loop calls
    ``before_train_epoch`` once). It warns when the training loader has
    workers but another ``worker_init_fn``.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        from ..datasets.seeding import epoch_worker_init_fn

        loader = runner.train_dataloader
        if not getattr(loader, 'num_workers', 0):
            return
        init_fn = getattr(loader, 'worker_init_fn', None)
        if getattr(init_fn, 'func', init_fn) is not epoch_worker_init_fn:
            runner.logger.warning(
                'EpochSeedHook: train_dataloader.worker_init_fn is not '
                "dict(type='yolo_losses.epoch_worker_init_fn'); the loader "
                'workers are not seeded per epoch, so augmentations may '
                'repeat every epoch and a resumed run differs')

    def before_train_epoch(self, runner) -> None:
        from ..datasets.seeding import set_worker_seed

        seed = runner.seed if runner.seed is not None else 0
        state = np.random.SeedSequence([int(seed) % 2**32, runner.epoch])
        value = int(state.generate_state(1)[0])
        np.random.seed(value)
        random.seed(value)
        # before the loader starts (or wakes) this epoch's workers
        set_worker_seed(runner.train_dataloader.dataset, int(seed) % 2**32,
                        runner.rank, runner.epoch)
