"""Every config under configs/ loads, builds its model and loss, and the
model's raw outputs have the contract's layouts."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from yolo_losses.engine.runner import apply_loss_switches, check_config_keys
from yolo_losses.kernels import fused, fused_enabled
from yolo_losses.validation import validation, validation_enabled
from yolo_losses.registry import DATASETS, MODELS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(REPO, 'configs')
RUNNABLE = sorted(
    p for p in glob.glob(osp.join(CONFIG_DIR, '**', '*.*'), recursive=True)
    if p.endswith(('.py', '.yaml', '.yml')) and '_base_' not in p)
MODEL_BASES = sorted(glob.glob(osp.join(CONFIG_DIR, '_base_', 'models', '*.py')))
NUM_CLASSES = 5  # the built-in data's, every config here uses it


def rel(path):
    return osp.relpath(path, CONFIG_DIR)


@pytest.fixture(autouse=True)
def scope():
    with DefaultScope.overwrite_default_scope('yolo_losses'):
        yield


def test_the_expected_configs_exist():
    names = {rel(p) for p in RUNNABLE}
    assert {'yolov8/yolov8_n_synthetic.py', 'yolov5/yolov5_n_synthetic.py',
            'yolov3/yolov3_n_synthetic.py', 'yolov8/yolov8_n_coco.py',
            'yolov8/yolov8_n_vfl_siou_synthetic.py',
            'yolov8/yolov8_s_synthetic_gpu.py',
            'yolov5/yolov5_n_synthetic.yaml', 'yolo26/yolo26_n_synthetic.py',
            'yolo26/yolo26_n_coco.py', 'yolov10/yolov10_n_synthetic.py'} <= names


def _expected_channels(head):
    name = type(head).__name__
    if name in ('YOLOv8Head', 'YOLO26Head', 'YOLOv10Head'):
        return [4 * head.reg_max + NUM_CLASSES] * 3
    anchors_per_level = 3  # default anchors: three per level
    return [anchors_per_level * (5 + NUM_CLASSES)] * 3


@pytest.mark.parametrize('path', RUNNABLE + MODEL_BASES, ids=rel)
def test_config_builds_model_and_loss(path):
    cfg = Config.fromfile(path)
    if path in RUNNABLE:
        assert cfg.default_scope == 'yolo_losses'
        check_config_keys(cfg)
        for key in ('train_dataloader', 'val_dataloader', 'val_evaluator',
                    'optim_wrapper', 'param_scheduler', 'train_cfg'):
            assert key in cfg, key
        assert cfg.yolo_losses_validate is False
        assert cfg.yolo_losses_fused is True
    model = MODELS.build(cfg.model)
    head = model.bbox_head
    loss = model.loss_module
    end2end = type(head).__name__ in ('YOLO26Head', 'YOLOv10Head')
    family = 'E2ELoss' if end2end else type(head).__name__.replace('Head', 'Loss')
    assert type(loss).__name__ == family
    for part in (loss.one2many, loss.one2one) if end2end else (loss,):
        assert part.num_classes == NUM_CLASSES
    # raw outputs in the loss contract's layout, strides 8, 16, 32 (an
    # end-to-end head: the same for each of its two branches)
    model.eval()
    with torch.no_grad():
        outputs = model(torch.zeros(1, 3, 64, 96), mode='tensor')
    branches = [outputs['one2many'], outputs['one2one']] if end2end else [outputs]
    for levels in branches:
        assert [tuple(o.shape) for o in levels] == [
            (1, c, 64 // s, 96 // s)
            for c, s in zip(_expected_channels(head), (8, 16, 32))]


def test_loss_swap_config_uses_varifocal_and_siou():
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'yolov8',
                                   'yolov8_n_vfl_siou_synthetic.py'))
    loss = MODELS.build(cfg.model).loss_module
    assert type(loss.loss_cls).__name__ == 'VarifocalLoss'
    assert type(loss.loss_bbox).__name__ == 'SIoULoss'
    assert type(loss.loss_dfl).__name__ == 'DistributionFocalLoss'


def test_yaml_config_matches_its_python_twin():
    from_yaml = Config.fromfile(osp.join(CONFIG_DIR, 'yolov5',
                                         'yolov5_n_synthetic.yaml'))
    from_py = Config.fromfile(osp.join(CONFIG_DIR, 'yolov5',
                                       'yolov5_n_synthetic.py'))
    assert from_yaml.model.backbone == from_py.model.backbone
    assert from_yaml.model.bbox_head == from_py.model.bbox_head
    assert from_yaml.model.test_cfg.iou_thr == 0.6
    assert from_yaml.train_dataloader == from_py.train_dataloader


@pytest.mark.parametrize('path', [p for p in RUNNABLE if 'coco' not in p],
                         ids=rel)
def test_synthetic_configs_build_their_datasets(path):
    cfg = Config.fromfile(path)
    for name in ('train_dataloader', 'val_dataloader'):
        dataset_cfg = cfg[name]['dataset'].copy()
        dataset_cfg['num_images'] = 2
        dataset = DATASETS.build(dataset_cfg)
        sample = dataset[0]
        assert sample['inputs'].dtype == torch.uint8
        assert sample['inputs'].shape[0] == 3
    assert cfg.train_dataloader.collate_fn.type == 'yolo_losses.yolo_collate'


def test_coco_template_points_at_the_exported_layout(tmp_path, monkeypatch):
    from yolo_losses.datasets import SyntheticShapesDataset, export_coco

    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'yolov8', 'yolov8_n_coco.py'))
    assert cfg.model.bbox_head.num_classes == NUM_CLASSES
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match='data_root'):
        DATASETS.build(cfg.val_dataloader.dataset)
    export_coco(SyntheticShapesDataset(num_images=2, split='val', img_size=64),
                'data/shapes_coco')
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    assert len(dataset) == 2
    assert dataset[1]['inputs'].shape == (3, 256, 256)


def test_config_switches_reach_the_losses():
    """``yolo_losses_validate`` / ``yolo_losses_fused`` set the global
    switches the losses read; anything but a bool is refused by name."""
    with fused(True), validation(True):
        apply_loss_switches(Config(dict(yolo_losses_validate=False,
                                        yolo_losses_fused=False)))
        assert fused_enabled() is False
        assert validation_enabled() is False
        apply_loss_switches(Config(dict()))      # defaults: both on
        assert fused_enabled() is True and validation_enabled() is True
        with pytest.raises(TypeError, match='yolo_losses_fused'):
            apply_loss_switches(Config(dict(yolo_losses_fused='off')))
