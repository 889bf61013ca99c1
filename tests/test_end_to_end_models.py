"""YOLO26-n and the YOLOv10-style detector: architecture against ultralytics
8.4.190, the detached one-to-one branch, NMS-free top-k inference, the
loss-schedule and class-weight hooks."""
import os
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from torch import nn

import yolo_losses.models  # noqa: F401  (registers the models)
from yolo_losses.engine.loss_schedule import (ClassWeightsHook, LossEpochHook,
                                              count_labels, outermost_modules_with)
from yolo_losses.models import topk_detections
from yolo_losses.models.layers import C2PSA, Attention, C3k2
from yolo_losses.registry import MODELS
from tiny_runs import tiny_data

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODEL_DIR = osp.join(REPO, 'configs', '_base_', 'models')


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(name: str, num_classes: int = None, **test_cfg):
    cfg = Config.fromfile(osp.join(MODEL_DIR, f'{name}.py')).model
    if num_classes is not None:
        cfg.bbox_head.num_classes = num_classes
    cfg.test_cfg.update(test_cfg)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- architecture ------------------------------------------------------------

@pytest.mark.parametrize('num_classes,expected', [
    # ultralytics 8.4.190 DetectionModel('yolo26n.yaml', nc=...): 80 classes
    # is the count yolo26.yaml states (2,572,280); 5 classes computed once in
    # a scratch venv. Both branches of the head are included.
    (80, 2572280), (5, 2505750)])
def test_yolo26n_parameter_count_equals_ultralytics(num_classes, expected):
    model = build('yolo26_n', num_classes)
    count = n_params(model)
    assert abs(count - expected) <= 0.02 * expected  # the bound
    assert count == expected  # and in fact exact


def _fill(module: nn.Module) -> None:
    """Deterministic weights from a formula (the same one filled the
    ultralytics module in the scratch run whose outputs are pasted below)."""
    with torch.no_grad():
        for i, (name, t) in enumerate(module.state_dict().items()):
            if t.dtype != torch.float32:
                continue
            n = torch.arange(t.numel(), dtype=torch.float32).reshape(t.shape)
            if name.endswith('running_var'):
                t.copy_(1 + 0.5 * torch.sin(n + i) ** 2)
            else:
                t.copy_(0.3 * torch.sin(0.37 * n + 1.3 * i))


@pytest.mark.parametrize('make,channels,expected', [
    # ultralytics 8.4.190 nn/modules/block.py Attention(16, num_heads=2),
    # C2PSA(256, 256, 1), C3k2(32, 32, 1, True, 0.5, True) with BN eps 1e-3
    # (as its models set), the same weights (transplanted by name), eval
    # mode, input sin(arange).reshape(2, C, 4, 3): sum, sum |y|, y[1, -1, -1]
    (lambda: Attention(16, num_heads=2), 16,
     (-19.59038543701172, 78.88771057128906,
      [-0.17544634640216827, -0.17872224748134613, -0.17691200971603394])),
    (lambda: C2PSA(256, 1), 256,
     (2660.506591796875, 3868.74853515625,
      [0.7658534049987793, 0.7654282450675964, 0.7678261399269104])),
    (lambda: C3k2(32, 32, 1, c3k=True, attn=True), 32,
     (23.147708892822266, 101.9639892578125,
      [0.1322965919971466, 0.1330719143152237, 0.13661670684814453])),
], ids=['Attention', 'C2PSA', 'C3k2-attn'])
def test_attention_blocks_equal_ultralytics(make, channels, expected):
    module = make()
    _fill(module)
    module.eval()
    x = torch.sin(torch.arange(2 * channels * 12, dtype=torch.float32)).reshape(
        2, channels, 4, 3)
    with torch.no_grad():
        y = module(x)
    total, absolute, last_row = expected
    assert y.shape == x.shape
    assert y.sum().item() == pytest.approx(total, rel=1e-4, abs=1e-3)
    assert y.abs().sum().item() == pytest.approx(absolute, rel=1e-4)
    assert y[1, -1, -1].tolist() == pytest.approx(last_row, rel=1e-4, abs=1e-5)


def test_yolo26n_widths_strides_and_blocks():
    model = build('yolo26_n')
    # yolo26.yaml at n: P3/P4/P5 from the backbone 128/128/256 (after the
    # widening C3k2 of stage 2), neck outputs 64/128/256
    assert model.backbone.out_channels == [128, 128, 256]
    assert model.backbone.out_strides == [8, 16, 32]
    assert model.neck.out_channels == [64, 128, 256]
    c2psa = model.backbone.stages[4][-1]
    assert isinstance(c2psa, C2PSA) and len(c2psa.blocks) == 1
    assert c2psa.blocks[0].attn.num_heads == 2  # max(128 // 64, 1)
    head = model.bbox_head
    assert head.reg_max == 1
    # one-to-one branch: same structure, separate parameters
    assert n_params(head.one2one_box_branches) == n_params(head.box_branches)
    assert n_params(head.one2one_cls_branches) == n_params(head.cls_branches)
    assert head.box_branches[0][0].conv.weight.data_ptr() != \
        head.one2one_box_branches[0][0].conv.weight.data_ptr()


@pytest.mark.parametrize('name,channels', [('yolo26_n', 4 + 5), ('yolov10_n', 64 + 5)])
def test_forward_gives_both_branches_in_the_loss_layout(name, channels):
    model = build(name)
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 96), mode='tensor')
    assert set(out) == {'one2many', 'one2one'}
    for levels in out.values():
        assert [tuple(o.shape) for o in levels] == [
            (2, channels, 64 // s, 96 // s) for s in (8, 16, 32)]
    # the copies start equal (deep copy, same bias priors)
    for a, b in zip(out['one2many'], out['one2one']):
        assert torch.equal(a, b)
    # ultralytics 8.4 bias_init: box 2.0, classes log(5 / C / (640 / s)^2)
    head = model.bbox_head
    for branch in (head.box_branches, head.one2one_box_branches):
        assert torch.all(branch[0][-1].bias == 2.0)
    assert head.one2one_cls_branches[1][-1].bias[0].item() == pytest.approx(
        torch.log(torch.tensor(5 / 5 / (640 / 16) ** 2)).item())


@pytest.mark.parametrize('name', ['yolo26_n', 'yolov10_n'])
def test_one2one_branch_trains_only_itself(name):
    model = build(name)
    model.train()
    out = model(torch.rand(2, 3, 64, 64), mode='tensor')
    sum(o.square().sum() for o in out['one2one']).backward()
    head = model.bbox_head
    body = list(model.backbone.parameters()) + list(model.neck.parameters())
    assert all(p.grad is None for p in body)  # detached: nothing reaches the neck
    assert all(p.grad is None for p in head.box_branches.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in head.one2one_box_branches.parameters())
    # the one-to-many branch does reach the backbone
    model.zero_grad(set_to_none=True)
    out = model(torch.rand(2, 3, 64, 64), mode='tensor')
    sum(o.square().sum() for o in out['one2many']).backward()
    assert model.backbone.stages[0].conv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in head.one2one_cls_branches.parameters())


# --- inference ---------------------------------------------------------------

def test_topk_detections_hand_made():
    # 4 points, 3 classes; the 3 highest (point, class) pairs are
    # (2, 1) 0.9, (0, 2) 0.8, (2, 0) 0.7: point 2 twice, point 3 (best 0.6)
    # not at all
    scores = torch.tensor([[[0.1, 0.2, 0.8],
                            [0.05, 0.3, 0.1],
                            [0.7, 0.9, 0.0],
                            [0.6, 0.0, 0.0]]])
    boxes = torch.arange(16, dtype=torch.float32).reshape(1, 4, 4)
    result = topk_detections(boxes, scores, max_per_img=3)
    assert result.scores[0].tolist() == pytest.approx([0.9, 0.8, 0.7])
    assert result.labels.tolist() == [[1, 2, 0]]
    assert result.indices.tolist() == [[2, 0, 2]]
    assert torch.equal(result.boxes[0], boxes[0, [2, 0, 2]])
    assert result.mask.tolist() == [[True, True, True]]
    # a threshold empties the slots at or below it; more slots than points
    result = topk_detections(boxes, scores, max_per_img=6, score_thr=0.75)
    assert result.mask.tolist() == [[True, True, False, False, False, False]]
    assert result.scores[0].tolist() == pytest.approx([0.9, 0.8, 0, 0, 0, 0])
    assert torch.all(result.boxes[0, 2:] == 0)
    # the same set as one top-k over all N * C pairs
    torch.manual_seed(0)
    scores = torch.rand(3, 50, 7)
    result = topk_detections(torch.rand(3, 50, 4), scores, max_per_img=20)
    assert torch.equal(result.scores, scores.flatten(1).topk(20, dim=1).values)


def _logit(p: float) -> float:
    return torch.logit(torch.tensor(p)).item()


def test_predict_is_the_one2one_topk_by_default_and_nms_on_request():
    model = build('yolo26_n')
    assert model.end2end is True
    # a hand-made head output for a 64 x 64 input: every logit -20 (score
    # 2e-9, below score_thr) except a few points of level 0 (stride 8)
    o2o = [torch.full((1, 9, 64 // s, 64 // s), -20.0) for s in (8, 16, 32)]
    for level in o2o:
        level[:, :4] = 1.0  # raw distances: one stride to each side
    o2o[0][0, 4 + 3, 2, 5] = _logit(0.9)   # class 3 at point (x=5, y=2)
    o2o[0][0, 4 + 1, 6, 0] = _logit(0.6)   # class 1 at point (x=0, y=6)
    # one-to-many: two class-0 boxes 4 strides to each side, one point
    # apart: IoU 56*64 / (2*64*64 - 56*64) = 0.78 > iou_thr 0.7
    o2m = [level.clone().fill_(-20.0) for level in o2o]
    for level in o2m:
        level[:, :4] = 4.0
    o2m[0][0, 4, 3, 3] = _logit(0.8)
    o2m[0][0, 4, 3, 4] = _logit(0.7)
    preds = dict(one2many=o2m, one2one=o2o)
    [result] = model.postprocess(preds, None, (64, 64))
    # point (x, y) of level 0 sits at ((x + 0.5) * 8, (y + 0.5) * 8); +-8 px
    assert result['scores'].tolist() == pytest.approx([0.9, 0.6])
    assert result['labels'].tolist() == [3, 1]
    torch.testing.assert_close(result['bboxes'], torch.tensor(
        [[36.0, 12.0, 52.0, 28.0], [0.0, 44.0, 12.0, 60.0]]))  # -4 clipped to 0
    # test_cfg.end2end=False: the one-to-many branch + NMS
    nms_model = build('yolo26_n', end2end=False)
    assert nms_model.end2end is False
    [result] = nms_model.postprocess(preds, None, (64, 64))
    assert result['scores'].tolist() == pytest.approx([0.8])
    assert result['labels'].tolist() == [0]
    torch.testing.assert_close(result['bboxes'], torch.tensor([[0.0, 0.0, 60.0, 60.0]]))


def test_end2end_needs_a_one2one_head():
    with pytest.raises(ValueError, match='end2end'):
        build('yolov8_n', end2end=True)
    with pytest.raises(ValueError, match='end2end'):
        build('yolo26_n', end2end='yes')
    assert build('yolov8_n').end2end is False


def test_decode_reg_max_1_is_raw_distances_times_stride():
    head = build('yolo26_n').bbox_head
    preds = [torch.zeros(1, 9, 64 // s, 64 // s) for s in (8, 16, 32)]
    preds[2][0, :4, 1, 0] = torch.tensor([0.5, 1.0, 1.5, -0.25])  # l, t, r, b
    boxes, scores = head.decode(preds)
    # level 2 (stride 32) starts after 8*8 + 4*4 points; (x=0, y=1) is 2 more
    index = 64 + 16 + 2
    cx, cy = 0.5 * 32, 1.5 * 32
    assert boxes[0, index].tolist() == pytest.approx(
        [cx - 16, cy - 32, cx + 48, cy - 8])  # nothing clamped
    assert scores.shape == (1, 64 + 16 + 4, 5)
    with pytest.raises(TypeError, match='one branch'):
        head.decode(dict(one2one=preds))


# --- hooks -------------------------------------------------------------------

def _fake_runner(model, epoch, max_epochs, **extra):
    return SimpleNamespace(model=model, epoch=epoch, max_epochs=max_epochs,
                           hooks=[], **extra)


def _progressive(k: int, epochs: int):
    # ultralytics 8.4.190 E2ELoss.decay, written out
    o2m = max(1 - k / max(epochs - 1, 1), 0) * (0.8 - 0.1) + 0.1
    return o2m, max(1 - o2m, 0)


def _detector_with_loss(name: str) -> nn.Module:
    """A stand-in model holding the config's loss where a detector does
    (building the loss alone keeps these tests fast)."""
    from yolo_losses.models.heads import fill_head_loss_cfg
    head = Config.fromfile(osp.join(MODEL_DIR, f'{name}.py')).model.bbox_head
    cfg = dict(head.loss)
    for branch in ('one2many', 'one2one'):
        cfg[branch] = fill_head_loss_cfg(cfg[branch], 'test', num_classes=5,
                                         strides=(8.0, 16.0, 32.0),
                                         reg_max=head.reg_max)
    model = nn.Module()
    model.bbox_head = nn.Module()
    model.bbox_head.loss_module = MODELS.build(cfg)
    return model


def test_loss_epoch_hook_sets_the_schedule_and_resume_matches():
    epochs = 6
    model = _detector_with_loss('yolo26_n')
    loss = model.bbox_head.loss_module
    hook = LossEpochHook()
    states = []
    for k in range(epochs):  # an uninterrupted run: the hook at each epoch start
        hook.before_train_epoch(_fake_runner(model, k, epochs))
        o2m, o2o = loss.branch_weights()
        assert (o2m.item(), o2o.item()) == pytest.approx(_progressive(k, epochs))
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    # k = 3 of 6: w_o2m = (1 - 3/5) * 0.7 + 0.1 = 0.38
    assert _progressive(3, epochs) == pytest.approx((0.38, 0.62))
    # resume: a fresh model loads the checkpoint saved at the end of epoch 3
    # (its buffers as set at that epoch's start, k = 2); the resumed loop
    # then calls the hook from runner.epoch = 3 on
    resumed = _detector_with_loss('yolo26_n')
    resumed.load_state_dict(states[2])
    for k in range(3, epochs):
        hook.before_train_epoch(_fake_runner(resumed, k, epochs))
        assert [w.item() for w in resumed.bbox_head.loss_module.branch_weights()] \
            == pytest.approx(_progressive(k, epochs))
        for key, value in states[k].items():
            assert torch.equal(resumed.state_dict()[key], value), key


def test_loss_epoch_hook_reaches_the_ema_copy_and_leaves_other_models_alone():
    model = _detector_with_loss('yolov10_n')
    ema = _detector_with_loss('yolov10_n')
    runner = _fake_runner(model, 4, 10)
    # mmengine's EMAHook keeps the averaged model as hook.ema_model.module
    runner.hooks = [SimpleNamespace(ema_model=nn.ModuleDict(dict(module=ema)))]
    LossEpochHook().before_train_epoch(runner)
    for m in (model, ema):
        loss = m.bbox_head.loss_module
        assert loss.epoch.item() == 4 and loss.num_epochs.item() == 10
        # constant schedule (YOLOv10): both weights 1 whatever the epoch
        assert [w.item() for w in loss.branch_weights()] == [1.0, 1.0]
    plain = nn.Sequential(nn.Linear(2, 2))  # no set_epoch anywhere
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    LossEpochHook().before_train_epoch(_fake_runner(plain, 2, 5))
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in before.items())
    # the outermost loss only (E2ELoss forwards to its branches itself)
    assert outermost_modules_with(model, 'set_class_weights') == \
        [model.bbox_head.loss_module]


class _Labels:
    """A dataset of given per-image labels (mmengine's data-info layout)."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def get_data_info(self, index):
        return dict(instances=[dict(bbox=[0, 0, 1, 1], bbox_label=label,
                                    ignore_flag=int(label < 0))
                               for label in self.images[index]])


def test_class_weights_hook_counts_the_training_labels():
    # class 0: 3 boxes, class 1: 1 box, class 2: 4 boxes, classes 3, 4 absent;
    # the ignored box (-1 here, flagged) does not count
    dataset = _Labels([[0, 2, 2], [1, 0], [2, 0, 2, -1], []])
    assert count_labels(_Labels([[0, 2, 2], [1, 0], [2, 0, 2]]), 5).tolist() == \
        [3, 1, 4, 0, 0]
    power = 0.5
    # ultralytics' compute_class_weights + set_class_weights, written out:
    # (1 / n) ** p for present classes, their mean for absent ones, then
    # divided by the mean of all
    present = [(1 / 3) ** power, (1 / 1) ** power, (1 / 4) ** power]
    fill = sum(present) / 3
    raw = present + [fill, fill]
    expected = [w / (sum(raw) / 5) for w in raw]

    model = _detector_with_loss('yolo26_n')
    runner = _fake_runner(model, 0, 3, cfg=Config(dict(class_weight_power=power)),
                          train_dataloader=SimpleNamespace(dataset=dataset),
                          logger=SimpleNamespace(info=lambda message: None))
    ClassWeightsHook().before_train(runner)
    loss = model.bbox_head.loss_module
    for branch in (loss.one2many, loss.one2one):
        assert branch.class_weights.tolist() == pytest.approx(expected, rel=1e-6)
    assert 'bbox_head.loss_module.one2one.class_weights' in model.state_dict()
    # power 0 (the default) leaves the weights at 1
    off = _detector_with_loss('yolo26_n')
    runner.model, runner.cfg = off, Config(dict())
    ClassWeightsHook().before_train(runner)
    assert off.bbox_head.loss_module.one2many.class_weights.tolist() == [1.0] * 5
    with pytest.raises(ValueError, match='class_weight_power'):
        ClassWeightsHook(power=-1)
    runner.cfg = Config(dict(class_weight_power='high'))
    with pytest.raises(ValueError, match='class_weight_power'):
        ClassWeightsHook().before_train(runner)


# --- training through tools/train.py ----------------------------------------

TINY = tiny_data(train_images=4) + '''\
train_cfg = dict(max_epochs=2)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False,
                        begin=0, end=2)]
'''

TINY_COCO = '''
_base_ = [{base!r}]
data_root = {root!r}
img_scale = 64
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_label=True),
    dict(type='LetterResize', scale=img_scale),
    dict(type='PackYOLOInputs'),
]
train_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(
    data_root=data_root, ann_file='annotations/instances_val.json',
    data_prefix=dict(img='images/val/'), pipeline=pipeline))
val_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(
    data_root=data_root, pipeline=pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False,
                        begin=0, end=1)]
class_weight_power = 1.0
'''


def _train(tmp_path, config_text, name):
    config = tmp_path / f'{name}.py'
    config.write_text(config_text)
    work_dir = tmp_path / f'work_{name}'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=os.pathsep.join(
        [REPO] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
    result = subprocess.run([sys.executable, 'tools/train.py', str(config),
                             '--work-dir', str(work_dir)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'final val mAP@.5:' in result.stdout
    from yolo_losses.engine import load_checkpoint_file
    return load_checkpoint_file(_last(work_dir)), work_dir


def _last(work_dir):
    return (work_dir / 'last_checkpoint').read_text().strip()


def _log(work_dir):
    return '\n'.join(p.read_text() for p in work_dir.rglob('*.log'))


@pytest.mark.slow  # 7-10 s each on a quiet 2-core machine, a minute under load
@pytest.mark.parametrize('config,schedule', [
    ('yolo26/yolo26_n_synthetic.py', 'progressive'),
    ('yolov10/yolov10_n_synthetic.py', 'constant')])
def test_tiny_training_run(tmp_path, config, schedule):
    base = osp.join(REPO, 'configs', config)
    checkpoint, work_dir = _train(tmp_path, TINY.format(base=base), 'tiny')
    log = _log(work_dir)
    for key in ('loss_box_o2m', 'loss_cls_o2m', 'loss_box_o2o', 'loss_cls_o2o',
                'loss_l1_o2o' if 'yolo26' in config else 'loss_dfl_o2o',
                'coco/bbox_mAP_50'):
        assert key in log, key
    state = checkpoint['state_dict']
    # LossEpochHook ran at the start of epoch 2 of 2: k = 1, E = 2
    assert state['bbox_head.loss_module.epoch'].item() == 1
    assert state['bbox_head.loss_module.num_epochs'].item() == 2
    assert all(torch.isfinite(v).all() for v in state.values()
               if v.is_floating_point())


@pytest.mark.slow
def test_yolo26_trains_from_coco_files_with_class_weights(tmp_path):
    from yolo_losses.datasets import SyntheticShapesDataset, export_coco
    root = tmp_path / 'shapes_coco'
    dataset = SyntheticShapesDataset(num_images=4, split='val', img_size=64)
    export_coco(dataset, str(root))
    base = osp.join(REPO, 'configs', 'yolo26', 'yolo26_n_coco.py')
    checkpoint, work_dir = _train(
        tmp_path, TINY_COCO.format(base=base, root=str(root) + '/'), 'coco')
    counts = torch.zeros(5)
    for index in range(len(dataset)):
        for label in dataset.sample(index)[2]:
            counts[int(label)] += 1
    # class_weight_power=1: (1 / n) normalised by the mean, absent classes
    # the mean of the present ones (the formula written out)
    present = counts > 0
    raw = torch.where(present, 1 / counts.clamp(min=1), torch.zeros(5))
    raw[~present] = raw[present].mean()
    expected = raw / raw.mean()
    state = checkpoint['state_dict']
    for branch in ('one2many', 'one2one'):
        torch.testing.assert_close(
            state[f'bbox_head.loss_module.{branch}.class_weights'], expected)
    assert 'class weights (class_weight_power=1)' in _log(work_dir)
