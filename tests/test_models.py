"""YOLOv3/v5/v8 detectors: output layouts, architecture against the
references, bias priors, a training step, an overfitting check, predict in
original-image pixels, the data preprocessor and bad configs."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper

import yolo_losses.models  # noqa: F401  (registers the models)
from yolo_losses.models import YOLODataPreprocessor
from yolo_losses.registry import MODELS

CONFIG_DIR = Path(__file__).resolve().parents[1] / 'configs' / '_base_' / 'models'
FAMILIES = ('yolov3', 'yolov5', 'yolov8')
LOSS_KEYS = {'yolov3': {'loss_xy', 'loss_wh', 'loss_obj', 'loss_cls'},
             'yolov5': {'loss_box', 'loss_obj', 'loss_cls'},
             'yolov8': {'loss_box', 'loss_cls', 'loss_dfl'}}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def model_cfg(family: str, size: str = 'n', num_classes: int = None, **test_cfg):
    cfg = Config.fromfile(str(CONFIG_DIR / f'{family}_{size}.py')).model
    if num_classes is not None:
        cfg.bbox_head.num_classes = num_classes
    cfg.test_cfg.update(test_cfg)
    return cfg


def build(family: str, size: str = 'n', num_classes: int = None, **test_cfg):
    torch.manual_seed(0)
    return MODELS.build(model_cfg(family, size, num_classes, **test_cfg))


# --- layouts and architecture ----------------------------------------------

@pytest.mark.parametrize('size', ['n', 's'])
@pytest.mark.parametrize('family', FAMILIES)
def test_forward_shapes_follow_the_loss_contract(family, size):
    model = build(family, size)
    num_classes = 5
    outputs = model(torch.rand(2, 3, 64, 96), mode='tensor')
    if family == 'yolov8':
        channels = 4 * 16 + num_classes  # [B, 4*reg_max + C, H, W]
    else:
        channels = 3 * (5 + num_classes)  # [B, A*(5+C), H, W]
    assert [tuple(o.shape) for o in outputs] == [
        (2, channels, 64 // s, 96 // s) for s in (8, 16, 32)]
    assert type(model.loss_module).__name__ == {
        'yolov3': 'YOLOv3Loss', 'yolov5': 'YOLOv5Loss', 'yolov8': 'YOLOv8Loss'}[family]


@pytest.mark.parametrize('family,size,expected', [
    # expected: trainable parameters of ultralytics 8.4.190
    # DetectionModel('yolov8{n,s}.yaml', nc=5) and yolov5 7.0.14
    # Model('yolov5{n,s}.yaml', nc=5), computed in a scratch venv
    ('yolov8', 'n', 3011807), ('yolov8', 's', 11137519),
    ('yolov5', 'n', 1770682), ('yolov5', 's', 7033114)])
def test_parameter_counts_equal_the_references(family, size, expected):
    model = build(family, size)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_darknet_layout():
    # Darknet-53 at full size: 52 convolutions before the head; stage widths
    # 32..1024, residual blocks (1, 2, 8, 8, 4)
    from yolo_losses.models import Darknet
    net = Darknet()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 5 + 2 * (1 + 2 + 8 + 8 + 4) == 52
    assert net.out_channels == [256, 512, 1024] and net.out_strides == [8, 16, 32]
    small = Darknet(deepen_factor=0.33, widen_factor=0.25)
    # blocks round(n * 0.33) with at least one: (1, 1, 3, 3, 1)
    blocks = [sum(type(m).__name__ == 'DarknetResBlock' for m in stage.modules())
              for stage in small.stages[1:]]
    assert blocks == [1, 1, 3, 3, 1]
    assert small.out_channels == [64, 128, 256]


@pytest.mark.parametrize('family', FAMILIES)
def test_bias_priors_as_the_references(family):
    num_classes = 5
    model = build(family)
    model.init_weights()  # what the Runner does; the priors must survive it
    head = model.bbox_head
    for level, stride in enumerate((8, 16, 32)):
        if family == 'yolov8':
            box_bias = head.box_branches[level][-1].bias
            cls_bias = head.cls_branches[level][-1].bias
            assert torch.allclose(box_bias, torch.ones_like(box_bias))
            # ultralytics: log(5 / nc / (640 / s) ** 2)
            expected = math.log(5 / num_classes / (640 / stride) ** 2)
            assert torch.allclose(cls_bias, torch.full_like(cls_bias, expected))
            continue
        bias = head.preds[level].bias.view(3, 5 + num_classes)
        if family == 'yolov5':
            obj = math.log(8 / (640 / stride) ** 2)
            cls = math.log(0.6 / (num_classes - 0.99))
        else:  # mmdet YOLOV3Head: bias_init_with_prob(8 / (608 / s) ** 2), (0.01)
            p_obj = 8 / (608 / stride) ** 2
            obj = -math.log((1 - p_obj) / p_obj)
            cls = -math.log((1 - 0.01) / 0.01)
        assert torch.allclose(bias[:, 4], torch.full((3,), obj))
        assert torch.allclose(bias[:, 5:], torch.full((3, num_classes), cls))


def test_head_fills_its_loss_arguments_and_rejects_conflicts():
    anchors = [[(8, 8), (12, 20), (20, 12)], [(24, 40), (40, 24), (40, 40)],
               [(60, 80), (80, 60), (100, 100)]]
    cfg = model_cfg('yolov5')
    cfg.bbox_head.update(num_classes=7, anchors=anchors)
    model = MODELS.build(cfg)
    assert model.loss_module.num_classes == 7
    assert model.loss_module.anchors.tolist() == [[list(map(float, a)) for a in level]
                                                  for level in anchors]
    cfg = model_cfg('yolov8')
    cfg.bbox_head.loss = dict(type='YOLOv8Loss', num_classes=3)
    with pytest.raises(ValueError, match='loss.num_classes=3'):
        MODELS.build(cfg)
    cfg = model_cfg('yolov8')
    cfg.bbox_head.loss = dict(type='YOLOv8Loss', num_classes=5, reg_max=16)
    assert MODELS.build(cfg).loss_module.reg_max == 16


# --- training --------------------------------------------------------------

COLOURS = np.array([[230, 30, 30], [30, 230, 30], [30, 30, 230]])


def synthetic_batch(seed: int, num_images: int = 4, size: int = 64):
    """Noisy backgrounds with 1-2 solid rectangles per image, the class
    given by the colour; the batch layout of ``yolo_collate``."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, (num_images, size, size, 3))
    rows, metas = [], []
    for index in range(num_images):
        for _ in range(int(rng.integers(1, 3))):
            label = int(rng.integers(0, 3))
            w, h = rng.integers(12, 36, 2)
            x1, y1 = rng.integers(0, size - w), rng.integers(0, size - h)
            images[index, y1:y1 + h, x1:x1 + w] = COLOURS[label]
            rows.append([index, label, (x1 + w / 2) / size, (y1 + h / 2) / size,
                         w / size, h / size])
        metas.append(dict(img_id=index, ori_shape=(size, size), scale=1.0, pad=(0, 0)))
    targets = torch.tensor(rows, dtype=torch.float32)
    max_boxes = int(torch.bincount(targets[:, 0].long()).max())
    inputs = torch.from_numpy(images).permute(0, 3, 1, 2).to(torch.uint8).contiguous()
    return dict(inputs=inputs, data_samples=dict(targets=targets, max_boxes=max_boxes,
                                                 metas=metas))


@pytest.mark.parametrize('family', FAMILIES)
def test_one_training_step_gives_finite_losses_and_gradients(family):
    model = build(family, num_classes=3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = model.data_preprocessor(synthetic_batch(0), True)
    losses = model(**data, mode='loss')
    assert set(losses) == LOSS_KEYS[family]
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    total = sum(losses.values())
    assert float(total.detach()) > 0
    total.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    learning = {n for n, p in model.named_parameters() if p.grad.abs().sum() > 0}
    # the backbone's first convolution and every head output learn (box
    # layers of a level without positives may legitimately get no gradient)
    assert 'backbone.stages.0.conv.weight' in learning
    assert len(learning) > 0.9 * len(before)
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert 'backbone.stages.0.conv.weight' in changed
    assert len(changed) > 0.9 * len(before)
    # the Runner's path: preprocessor, loss, parse_losses, optimizer step
    log = model.train_step(synthetic_batch(0), OptimWrapper(optimizer))
    assert set(log) == LOSS_KEYS[family] | {'loss'}
    assert all(torch.isfinite(v) for v in log.values())


@pytest.mark.parametrize('family', FAMILIES)
def test_short_fit_overfits_a_handful_of_images(family):
    model = build(family, num_classes=3)
    wrapper = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0))
    batch = synthetic_batch(1)
    history = [float(model.train_step(batch, wrapper)['loss'].detach()) for _ in range(30)]
    assert all(math.isfinite(v) for v in history)
    final = np.mean(history[-3:])
    if family == 'yolov8':
        # YOLOv8Loss divides by the sum of the task-aligned target scores,
        # which start near 0 and grow as predictions align with the boxes, so
        # the loss first rises (by 2-5x here) before it falls; compare with
        # its early peak
        assert final < 0.5 * max(history[:10]), history
    else:
        assert final < 0.5 * history[0], history


# --- inference ---------------------------------------------------------------

def test_predict_undoes_the_letterbox_yolov8():
    model = build('yolov8', num_classes=3, iou_thr=0.5)
    reg_max = 16
    preds = [torch.zeros(2, 4 * reg_max + 3, 64 // s, 64 // s) for s in (8, 16, 32)]
    for pred in preds:
        pred[:, 4 * reg_max:] = -20.0  # scores ~2e-9, below score_thr
    # (left, top, right, bottom) = bins (1, 2, 3, 1) at every point of level 0
    for side, bin_index in enumerate((1, 2, 3, 1)):
        preds[0][:, side * reg_max + bin_index] = 40.0
    cls = 4 * reg_max
    preds[0][:, cls + 1, 2, 3] = 20.0  # class 1, row 2, column 3
    preds[0][:, cls + 1, 2, 4] = 19.0  # same class one cell right: IoU 0.6, suppressed
    preds[0][:, cls + 0, 5, 5] = 18.0  # class 0
    metas = [dict(img_id=11, ori_shape=(100, 110), scale=0.5, pad=(8, 4)),
             dict(img_id=12, ori_shape=(32, 32), scale=np.float32(2.0), pad=(0, 0))]
    results = model.postprocess(preds, metas, (64, 64))
    # point (3.5, 2.5) cells -> (2.5, 0.5, 6.5, 3.5) cells -> x8 = (20, 4, 52, 28) px;
    # point (5.5, 5.5) -> (36, 28, 68, 52) px
    # image 0: (box - (8, 4, 8, 4)) / 0.5, clipped to w=110, h=100
    expected0 = torch.tensor([[24., 0, 88, 48], [56, 48, 110, 96]])
    # image 1: box / 2, clipped to 32 x 32
    expected1 = torch.tensor([[10., 2, 26, 14], [18, 14, 32, 26]])
    for result, img_id, expected in zip(results, (11, 12), (expected0, expected1)):
        assert result['img_id'] == img_id
        torch.testing.assert_close(result['bboxes'], expected, atol=1e-4, rtol=0)
        assert result['labels'].tolist() == [1, 0]
        assert result['labels'].dtype == torch.long
        torch.testing.assert_close(result['scores'],
                                   torch.sigmoid(torch.tensor([20.0, 18.0])))


def test_predict_undoes_the_letterbox_anchor_heads():
    # yolov5: level 1 (stride 16), anchor 1 = (62, 45) px, row 1, column 2,
    # raw xywh 0: centre (2 + 0.5, 1 + 0.5) * 16 = (40, 24), wh = (2*0.5)^2 * anchor
    model = build('yolov5', num_classes=3)
    preds = [torch.zeros(1, 3 * 8, 64 // s, 64 // s) for s in (8, 16, 32)]
    for pred in preds:
        pred.view(1, 3, 8, *pred.shape[-2:])[:, :, 4] = -20.0
    cell = preds[1].view(1, 3, 8, 4, 4)[0, 1, :, 1, 2]
    cell[4], cell[5 + 2] = 20.0, 20.0
    cell[5:7] = -20.0
    meta = [dict(img_id=0, ori_shape=(64, 64), scale=1.0, pad=(0, 0))]
    (result,) = model.postprocess(preds, meta, (64, 64))
    torch.testing.assert_close(result['bboxes'], torch.tensor([[9., 1.5, 64, 46.5]]))
    assert result['labels'].tolist() == [2]
    # yolov3: level 2 (stride 32), anchor 0 = (116, 90) px, row 0, column 1,
    # raw xywh 0: centre (1 + 0.5, 0 + 0.5) * 32 = (48, 16), wh = exp(0) * anchor
    model = build('yolov3', num_classes=3)
    preds = [torch.zeros(1, 3 * 8, 64 // s, 64 // s) for s in (8, 16, 32)]
    for pred in preds:
        pred.view(1, 3, 8, *pred.shape[-2:])[:, :, 4] = -20.0
    cell = preds[2].view(1, 3, 8, 2, 2)[0, 0, :, 0, 1]
    cell[4], cell[5] = 20.0, 20.0
    cell[6:8] = -20.0
    meta = [dict(img_id=3, ori_shape=(300, 500), scale=0.25, pad=(16, 0))]
    (result,) = model.postprocess(preds, meta, (64, 64))
    # (-10, -29, 106, 61) px -> ((x - 16) / 0.25, y / 0.25) = (-104, -116, 360, 244)
    torch.testing.assert_close(result['bboxes'], torch.tensor([[0., 0, 360, 244]]))
    assert result['labels'].tolist() == [0] and result['img_id'] == 3


@pytest.mark.parametrize('family', FAMILIES)
def test_predict_mode_through_val_step(family):
    # untrained YOLOv3 scores are ~1e-5 (its priors), below its config's 0.005
    model = build(family, num_classes=3, score_thr=0.0)
    model.eval()
    batch = synthetic_batch(2, num_images=2)
    results = model.val_step(batch)
    assert len(results) == 2
    preds = model(model.data_preprocessor(batch)['inputs'], mode='tensor')
    direct = model.postprocess(preds, batch['data_samples']['metas'], (64, 64))
    for index, (result, again) in enumerate(zip(results, direct)):
        assert result['img_id'] == index
        count = len(result['scores'])
        assert 0 < count <= 100
        assert result['bboxes'].shape == (count, 4) and result['labels'].dtype == torch.long
        assert (result['bboxes'] >= 0).all() and (result['bboxes'] <= 64).all()
        assert (result['scores'][:-1] >= result['scores'][1:]).all()
        assert (result['scores'] > model.test_cfg['score_thr']).all()
        torch.testing.assert_close(result['bboxes'], again['bboxes'])
    # without metas: the input is the original image, ids are batch positions
    plain = model.predict(torch.rand(2, 3, 64, 64))
    assert [r['img_id'] for r in plain] == [0, 1]


# --- data preprocessor ---------------------------------------------------------

def test_data_preprocessor_scales_and_orders_channels():
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.int64).remainder(256).to(torch.uint8)
    images = images.view(2, 3, 4, 4)
    samples = dict(targets=torch.zeros(0, 6), max_boxes=0, metas=[{}, {}])
    out = YOLODataPreprocessor()(dict(inputs=images, data_samples=samples))
    assert out['inputs'].dtype == torch.float32
    torch.testing.assert_close(out['inputs'], images.double().div(255).float())
    assert out['data_samples']['max_boxes'] == 0
    flipped = YOLODataPreprocessor(bgr_to_rgb=True)(dict(inputs=images))['inputs']
    torch.testing.assert_close(flipped[:, 0], images[:, 2].double().div(255).float())
    stacked = YOLODataPreprocessor()(dict(inputs=list(images)))['inputs']
    torch.testing.assert_close(stacked, out['inputs'])
    floats = torch.rand(1, 3, 4, 4)
    assert torch.equal(YOLODataPreprocessor()(dict(inputs=floats))['inputs'], floats)
    with pytest.raises(TypeError, match='uint8'):
        YOLODataPreprocessor()(dict(inputs=images.int()))
    with pytest.raises(KeyError, match='inputs'):
        YOLODataPreprocessor()(dict(images=images))
    with pytest.raises(ValueError, match=r'\[B, 3, H, W\]'):
        YOLODataPreprocessor()(dict(inputs=images[:, :2]))
    with pytest.raises(TypeError, match='channels_last'):
        YOLODataPreprocessor(channels_last=1)


def test_data_preprocessor_channels_last_keeps_values():
    images = torch.randint(0, 256, (2, 3, 8, 6), dtype=torch.uint8)
    plain = YOLODataPreprocessor()(dict(inputs=images))['inputs']
    nhwc = YOLODataPreprocessor(channels_last=True)(dict(inputs=images))['inputs']
    assert nhwc.is_contiguous(memory_format=torch.channels_last)
    assert not plain.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(nhwc, plain)


# --- bad input -------------------------------------------------------------------

def test_bad_configs_and_calls_raise_clear_errors():
    model = build('yolov8')
    with pytest.raises(ValueError, match='mode'):
        model(torch.rand(1, 3, 64, 64), mode='train')
    with pytest.raises(KeyError, match='targets'):
        model(torch.rand(1, 3, 64, 64), dict(max_boxes=1), mode='loss')
    with pytest.raises(KeyError, match="'pad'"):
        model.predict(torch.rand(1, 3, 64, 64),
                      dict(metas=[dict(img_id=0, ori_shape=(64, 64), scale=1.0)]))
    with pytest.raises(ValueError, match='scale must be positive'):
        model.predict(torch.rand(1, 3, 64, 64), dict(metas=[dict(
            img_id=0, ori_shape=(64, 64), scale=0.0, pad=(0, 0))]))
    with pytest.raises(TypeError, match='ori_shape'):
        model.predict(torch.rand(1, 3, 64, 64), dict(metas=[dict(
            img_id=0, ori_shape=64, scale=1.0, pad=(0, 0))]))
    cfg = model_cfg('yolov8')
    cfg.test_cfg = dict(score_th=0.1)
    with pytest.raises(KeyError, match='score_th'):
        MODELS.build(cfg)
    cfg = model_cfg('yolov8')
    cfg.bbox_head.strides = (8, 16, 64)
    with pytest.raises(ValueError, match='bbox_head.strides'):
        MODELS.build(cfg)
    cfg = model_cfg('yolov5')
    cfg.backbone.arch = 'v6'
    with pytest.raises(ValueError, match='arch'):
        MODELS.build(cfg)
    cfg = model_cfg('yolov5')
    cfg.backbone.widen_factor = 0
    with pytest.raises(ValueError, match='widen_factor'):
        MODELS.build(cfg)
    cfg = model_cfg('yolov3')
    cfg.neck.in_channels = [64, 128]
    with pytest.raises(ValueError, match='in_channels'):
        MODELS.build(cfg)
    cfg = model_cfg('yolov3')
    cfg.bbox_head.num_classes = 0
    with pytest.raises(ValueError, match='num_classes'):
        MODELS.build(cfg)
    cfg = model_cfg('yolov8')
    cfg.bbox_head.loss = dict(type='YOLOv8Los')
    with pytest.raises(KeyError, match='YOLOv8Loss'):
        MODELS.build(cfg)


def test_bfloat16_autocast_training_and_predict():
    model = build('yolov8', num_classes=3)
    data = model.data_preprocessor(synthetic_batch(0), True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model(**data, mode='loss')
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    # raw outputs in bfloat16, as the head gives them under autocast: the
    # hand-made case of test_predict_undoes_the_letterbox_yolov8, one image
    reg_max = 16
    preds = [torch.full((1, 4 * reg_max + 3, 64 // s, 64 // s), -20.0) for s in (8, 16, 32)]
    for pred in preds:
        pred[:, :4 * reg_max] = 0.0
    for side, bin_index in enumerate((1, 2, 3, 1)):
        preds[0][:, side * reg_max + bin_index] = 40.0
    preds[0][:, 4 * reg_max + 1, 2, 3] = 20.0
    meta = [dict(img_id=0, ori_shape=(100, 110), scale=0.5, pad=(8, 4))]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        (result,) = model.postprocess([p.bfloat16() for p in preds], meta, (64, 64))
    assert result['bboxes'].dtype == torch.float32
    torch.testing.assert_close(result['bboxes'], torch.tensor([[24., 0, 88, 48]]))
