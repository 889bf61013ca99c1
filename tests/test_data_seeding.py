"""Per-epoch augmentation seeds of the data loader workers (issue 12, point 4).

The loaders are built from the default data config with mmengine's own
``Runner.build_dataloader`` (so its ``worker_init_fn`` path is what runs),
on 8 synthetic images of 64 pixels; ``EpochSeedHook`` is driven with a
stand-in runner. The end-to-end resume runs use the same tiny data.
"""
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from yolo_losses.datasets import SyntheticShapesDataset, worker_seed
from yolo_losses.datasets.seeding import WorkerSeedState, epoch_worker_init_fn
from yolo_losses.engine import EpochSeedHook
from tiny_runs import tiny_data

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'yolov8', 'yolov8_n_synthetic.py')
IMG = 64


def _tiny_train_loader(num_workers, persistent):
    cfg = Config.fromfile(DEFAULT_CONFIG)
    loader = cfg.train_dataloader.copy()
    pipeline = [dict(t, scale=IMG) if t['type'] == 'LetterResize' else t
                for t in cfg.train_pipeline]
    loader.update(batch_size=2, num_workers=num_workers,
                  persistent_workers=persistent and num_workers > 0)
    loader['dataset'] = dict(loader['dataset'], num_images=8, img_size=IMG,
                             pipeline=pipeline)
    with DefaultScope.overwrite_default_scope('yolo_losses'):
        return Runner.build_dataloader(loader, seed=0)


def _epoch_images(loader, epoch, seed=0):
    """{img_id: input image} of one epoch, after the hook's epoch start."""
    runner = SimpleNamespace(seed=seed, rank=0, epoch=epoch,
                             train_dataloader=loader,
                             logger=MMLogger.get_current_instance())
    EpochSeedHook().before_train_epoch(runner)
    images = {}
    for batch in loader:
        for image, meta in zip(batch['inputs'], batch['data_samples']['metas']):
            images[meta['img_id']] = image.clone()
    assert sorted(images) == list(range(8))
    return images


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize('persistent', [False, True],
                         ids=['fresh_workers', 'persistent_workers'])
def test_worker_draws_differ_between_epochs_and_repeat_per_epoch(persistent):
    loader = _tiny_train_loader(num_workers=2, persistent=persistent)
    epoch0 = _epoch_images(loader, 0)
    epoch1 = _epoch_images(loader, 1)
    # the HSV gains are continuous draws: every image changes between epochs
    assert all(not torch.equal(epoch0[k], epoch1[k]) for k in epoch0)
    # a new loader (a resumed run) at epoch 1 draws what the first drew
    again = _tiny_train_loader(num_workers=2, persistent=persistent)
    assert _same(_epoch_images(again, 1), epoch1)
    # another run seed, other draws
    assert not _same(_epoch_images(again, 1, seed=1), epoch1)


def test_persistent_workers_draw_what_fresh_workers_draw():
    fresh = _tiny_train_loader(num_workers=2, persistent=False)
    persistent = _tiny_train_loader(num_workers=2, persistent=True)
    for epoch in (0, 1, 2):
        assert _same(_epoch_images(persistent, epoch),
                     _epoch_images(fresh, epoch)), epoch


def test_default_config_sets_the_epoch_worker_init_fn():
    for name in ('synthetic_shapes.py', 'coco_detection.py'):
        cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'datasets',
                                       name))
        assert cfg.train_dataloader.worker_init_fn == dict(
            type='yolo_losses.epoch_worker_init_fn')
    loader = _tiny_train_loader(num_workers=1, persistent=False)
    assert loader.worker_init_fn.func is epoch_worker_init_fn


def test_worker_seed_is_a_seed_sequence_of_seed_epoch_rank_worker():
    # written out: numpy's SeedSequence(seed, spawn_key=(epoch, rank, worker))
    sequence = np.random.SeedSequence(7, spawn_key=(3, 1, 2))
    low, high = (int(v) for v in sequence.generate_state(2, dtype=np.uint32))
    assert worker_seed(7, 3, 1, 2) == ((high << 31) | (low >> 1))
    seeds = {worker_seed(0, e, r, w) for e in range(3) for r in range(2)
             for w in range(4)}
    assert len(seeds) == 24 and all(0 <= s < 2**63 for s in seeds)


def test_seed_state_is_shared_and_checked():
    state = WorkerSeedState()
    assert state.get() is None
    state.set(5, 0, 2)
    assert state.get() == (5, 0, 2) and state.values.is_shared()
    with pytest.raises(ValueError, match='epoch must be an int >= 0'):
        state.set(5, 0, -1)
    dataset = SyntheticShapesDataset(num_images=1, img_size=IMG)
    assert isinstance(dataset.worker_seed_state, WorkerSeedState)
    with pytest.raises(RuntimeError, match='workers only'):
        epoch_worker_init_fn(0)


# --- end to end: kill after epoch 1, resume, compare with the uninterrupted run

TINY_CONFIG = tiny_data(augment=True, train_workers=2) + '''\
model = dict(test_cfg=dict(nms_pre=200, max_per_img=30))
# no validation: the test is about the training draws
train_cfg = dict(max_epochs=2, val_interval=100)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=2, T_max=2,
         convert_to_iter_based=True),
]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(save_best=None))
custom_hooks = [
    dict(type='EMAHook', ema_type='YOLOExpEMA', decay=0.9999, tau=2000,
         update_buffers=True, priority=49),
    dict(type='EpochSeedHook'),
    dict(type='KillAfterEpochHook'),
]
'''


class _Killed(Exception):
    pass


@pytest.fixture(scope='module')
def tiny_config(tmp_path_factory):
    from mmengine.hooks import Hook

    from yolo_losses.registry import HOOKS

    @HOOKS.register_module(force=True)
    class KillAfterEpochHook(Hook):
        """Stops the run after ``KILL_AFTER[0]`` epochs, once the
        checkpoint of that epoch is written (the CheckpointHook is
        VERY_LOW, this one LOWEST)."""

        priority = 'LOWEST'

        def after_train_epoch(self, runner):
            if KILL_AFTER and runner.epoch + 1 == KILL_AFTER[0]:
                raise _Killed()

    root = tmp_path_factory.mktemp('seeding')
    config = root / 'tiny_seed.py'
    config.write_text(TINY_CONFIG.format(base=DEFAULT_CONFIG))
    return dict(root=root, config=str(config))


KILL_AFTER = []


def _train(tiny_config, name, persistent, resume=None):
    from yolo_losses.engine.runner import train

    work_dir = tiny_config['root'] / name
    options = {'train_dataloader.persistent_workers': persistent,
               # one logger / message hub per run, even within one second
               'experiment_name': f'{name}_{len(KILL_AFTER)}_{resume}'}
    # one thread, as the subprocess runs of test_tools_train: OpenMP threads
    # spinning beside the loader workers make a 2-core machine crawl
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(tiny_config['config'], work_dir=str(work_dir), resume=resume,
              cfg_options=options)
    finally:
        torch.set_num_threads(threads)
    return work_dir


def _final_weights(work_dir):
    from yolo_losses.engine import load_checkpoint_file

    checkpoint = load_checkpoint_file(str(work_dir / 'epoch_2.pth'))
    assert checkpoint['meta']['epoch'] == 2
    return {part: checkpoint[part] for part in ('state_dict', 'ema_state_dict')}


@pytest.fixture(scope='module')
def uninterrupted(tiny_config):
    """Two epochs with persistent workers: the second epoch's draws come
    from workers that reseed themselves when the epoch changes."""
    return _final_weights(_train(tiny_config, 'full', persistent=True))


@pytest.mark.slow
@pytest.mark.parametrize('persistent', [False, True],
                         ids=['fresh_workers', 'persistent_workers'])
def test_killed_and_resumed_run_ends_bit_identical(tiny_config, uninterrupted,
                                                   persistent):
    """Fresh or persistent, the workers of epoch e draw from (seed, e,
    rank, worker id): both resumed runs end where the uninterrupted one
    does (before the fix the persistent one did not)."""
    name = f'killed_{persistent}'
    KILL_AFTER[:] = [1]
    try:
        with pytest.raises(_Killed):
            _train(tiny_config, name, persistent)
    finally:
        KILL_AFTER[:] = []
    work_dir = tiny_config['root'] / name
    assert osp.isfile(work_dir / 'epoch_1.pth')
    assert not osp.exists(work_dir / 'epoch_2.pth')
    resumed = _final_weights(_train(tiny_config, name, persistent,
                                    resume='auto'))
    for part, values in uninterrupted.items():
        assert resumed[part].keys() == values.keys()
        for key, value in values.items():
            assert torch.equal(resumed[part][key], value), (part, key)


def test_hook_warns_when_the_loader_workers_are_not_seeded_per_epoch():
    from unittest import mock

    from torch.utils.data import DataLoader

    warned = []
    logger = mock.Mock(warning=warned.append)
    dataset = SyntheticShapesDataset(num_images=2, img_size=IMG)
    plain = DataLoader(dataset, num_workers=1)
    EpochSeedHook().before_train(SimpleNamespace(train_dataloader=plain,
                                                 logger=logger))
    assert len(warned) == 1 and 'epoch_worker_init_fn' in warned[0]
    for loader in (_tiny_train_loader(num_workers=1, persistent=False),
                   DataLoader(dataset, num_workers=0)):
        EpochSeedHook().before_train(SimpleNamespace(train_dataloader=loader,
                                                     logger=logger))
    assert len(warned) == 1
