"""Preflight order (a bad checkpoint fails before any dataset is built) and
the TensorBoard switch of the visualizer (issue 12, point 7)."""
import glob
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config

from yolo_losses.engine import YOLOVisualizer
from yolo_losses.engine.runner import preflight, train
from yolo_losses.engine.visualizer import check_tensorboard, tensorboard_requested
from tiny_runs import tiny_data

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'yolov8', 'yolov8_n_synthetic.py')


# --- preflight: the checkpoint before the datasets ------------------------------

@pytest.fixture()
def dataset_builds(monkeypatch):
    """Records every dataset preflight builds (without building it)."""
    from yolo_losses.registry import DATASETS

    built = []

    def spy(cfg, *args, **kwargs):
        built.append(cfg['type'])
        raise AssertionError('a dataset was built before the checkpoint check')

    monkeypatch.setattr(DATASETS, 'build', spy)
    return built


def test_bad_checkpoint_fails_before_any_dataset_is_built(tmp_path,
                                                          dataset_builds):
    cfg = Config.fromfile(DEFAULT_CONFIG)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        preflight(cfg, str(tmp_path / 'missing.pth'))
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='could not be loaded'):
        preflight(cfg, str(corrupt))
    foreign = tmp_path / 'foreign.pth'
    torch.save(dict(state_dict={'conv.weight': torch.zeros(1)}), foreign)
    with pytest.raises(ValueError, match='does not fit the model'):
        preflight(cfg, str(foreign))
    # through the entry point too
    with pytest.raises(ValueError, match='does not fit the model'):
        train(DEFAULT_CONFIG, work_dir=str(tmp_path / 'work'),
              resume=str(foreign))
    assert dataset_builds == []
    assert not osp.exists(tmp_path / 'work')


# --- TensorBoard ----------------------------------------------------------------

def test_tensorboard_switch_is_in_the_default_runtime():
    cfg = Config.fromfile(DEFAULT_CONFIG)
    assert cfg.visualizer.type == 'YOLOVisualizer'
    assert cfg.visualizer.tensorboard is False
    assert not tensorboard_requested(cfg.visualizer)
    cfg.merge_from_dict({'visualizer.tensorboard': True})
    assert tensorboard_requested(cfg.visualizer)
    assert tensorboard_requested(dict(vis_backends=[
        dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]))
    with pytest.raises(TypeError, match='visualizer.tensorboard must be True '
                                        'or False'):
        YOLOVisualizer(name='tb_type_check', tensorboard='yes')


def test_missing_tensorboard_gives_a_clear_message(monkeypatch, tmp_path):
    # as if neither tensorboard nor torch's wrapper of it could be imported
    monkeypatch.setitem(sys.modules, 'tensorboard', None)
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)
    message = r'needs the tensorboard package.*pip install tensorboard'
    with pytest.raises(ModuleNotFoundError, match=message):
        check_tensorboard()
    with pytest.raises(ModuleNotFoundError, match=message):
        YOLOVisualizer(name='tb_missing', tensorboard=True)
    # the command fails in preflight, before the work dir exists
    with pytest.raises(ModuleNotFoundError, match=message):
        train(DEFAULT_CONFIG, work_dir=str(tmp_path / 'work'),
              cfg_options={'visualizer.tensorboard': True})
    assert not osp.exists(tmp_path / 'work')
    # off, nothing is imported
    YOLOVisualizer(name='tb_off', tensorboard=False)


TINY_CONFIG = tiny_data() + '''\
model = dict(test_cfg=dict(nms_pre=200, max_per_img=30))
train_cfg = dict(max_epochs=1)
param_scheduler = []
default_hooks = dict(logger=dict(interval=1))
'''


def test_tensorboard_switch_writes_event_files(tmp_path):
    pytest.importorskip(
        'tensorboard', reason='tensorboard is not installed (pip install '
        'tensorboard, or the test extra)')
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator

    config = tmp_path / 'tiny_tb.py'
    config.write_text(TINY_CONFIG.format(base=DEFAULT_CONFIG))
    work_dir = tmp_path / 'work'
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(str(config), work_dir=str(work_dir),
              cfg_options={'visualizer.tensorboard': True,
                           'experiment_name': 'tensorboard_switch'})
    finally:
        torch.set_num_threads(threads)
    events = glob.glob(str(work_dir / '*' / 'vis_data' / 'events.out.tfevents.*'))
    assert len(events) == 1, events
    accumulator = EventAccumulator(osp.dirname(events[0]))
    accumulator.Reload()
    scalars = accumulator.Tags()['scalars']
    # 8 images / batch 4 = 2 iterations, logged every iteration; then val
    assert [e.step for e in accumulator.Scalars('loss')] == [1, 2]
    assert {'loss_box', 'lr', 'coco/bbox_mAP_50'} <= set(scalars)


def test_tensorboard_backend_listed_by_hand_is_checked_too(monkeypatch,
                                                           tmp_path):
    monkeypatch.setitem(sys.modules, 'tensorboard', None)
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)
    with pytest.raises(ModuleNotFoundError,
                       match='a TensorboardVisBackend in visualizer.vis_backends '
                             'needs the tensorboard package'):
        train(DEFAULT_CONFIG, work_dir=str(tmp_path / 'work'), cfg_options={
            'visualizer': dict(type='Visualizer', vis_backends=[
                dict(type='TensorboardVisBackend')])})
    assert not osp.exists(tmp_path / 'work')
