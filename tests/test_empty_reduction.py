"""``reduction='none'`` on empty input, every basic loss.

PyTorch's ``reduction='none'`` (and mmdet's) of an empty batch is an empty
tensor of the element-wise shape; callers index it or reduce it themselves
(``loss.sum(-1)`` per box), so a 0-d zero there breaks them. It must stay on
``pred``'s graph so that ``backward`` through it works. ``'mean'`` and
``'sum'`` of nothing are a 0-d zero (the project's convention: mmdet's mean
of nothing is NaN).
"""
import pytest
import torch

from yolo_losses import build_loss

C = 4
LABELS = torch.zeros(0, dtype=torch.long)

# name -> (config, pred shape, target, extra positional args, element-wise shape)
CASES = {
    'SmoothL1Loss': (dict(type='SmoothL1Loss'), (0, 4), torch.zeros(0, 4), (), (0, 4)),
    'L1Loss': (dict(type='L1Loss'), (0, 4), torch.zeros(0, 4), (), (0, 4)),
    'MSELoss': (dict(type='MSELoss'), (0, 4), torch.zeros(0, 4), (), (0, 4)),
    # softmax CE: one value per sample
    'CrossEntropyLoss': (dict(type='CrossEntropyLoss'), (0, C), LABELS, (), (0,)),
    'CrossEntropyLoss-sigmoid-ids': (dict(type='CrossEntropyLoss', use_sigmoid=True),
                                     (0, C), LABELS, (), (0, C)),
    'CrossEntropyLoss-sigmoid-dense': (dict(type='CrossEntropyLoss', use_sigmoid=True),
                                       (0, C), torch.zeros(0, C), (), (0, C)),
    # mask CE: [N, C, h, w] logits, [N, h, w] masks, [N] labels -> [N, h, w]
    'CrossEntropyLoss-mask': (dict(type='CrossEntropyLoss', use_mask=True),
                              (0, C, 3, 3), torch.zeros(0, 3, 3), (LABELS,), (0, 3, 3)),
    'FocalLoss-ids': (dict(type='FocalLoss'), (0, C), LABELS, (), (0, C)),
    'FocalLoss-dense': (dict(type='FocalLoss'), (0, C), torch.zeros(0, C), (), (0, C)),
    'FocalLoss-activated': (dict(type='FocalLoss', activated=True), (0, C),
                            torch.zeros(0, C), (), (0, C)),
    'VarifocalLoss': (dict(type='VarifocalLoss'), (0, C), torch.zeros(0, C), (), (0, C)),
    # QFL sums over the classes: one value per sample (mmdet)
    'QualityFocalLoss-pair': (dict(type='QualityFocalLoss'), (0, C),
                              (LABELS, torch.zeros(0)), (), (0,)),
    'QualityFocalLoss-dense': (dict(type='QualityFocalLoss'), (0, C),
                               torch.zeros(0, C), (), (0,)),
    'DistributionFocalLoss': (dict(type='DistributionFocalLoss'), (0, C),
                              torch.zeros(0), (), (0,)),
}
for _box in ('IoULoss', 'GIoULoss', 'DIoULoss', 'CIoULoss', 'EIoULoss', 'SIoULoss'):
    CASES[_box] = (dict(type=_box), (0, 4), torch.zeros(0, 4), (), (0,))
# the modern box losses (docs/box_losses.md)
for _cfg in (dict(type='WIoULoss'), dict(type='MPDIoULoss', img_size=(64, 64)),
             dict(type='InnerIoULoss', loss=dict(type='CIoULoss')),
             dict(type='FocalerIoULoss', loss=dict(type='WIoULoss')),
             dict(type='ShapeIoULoss'), dict(type='NWDLoss'), dict(type='AlphaIoULoss'),
             dict(type='EfficientIoULoss', gamma=0.5), dict(type='PIoULoss', version=2)):
    CASES[_cfg['type']] = (_cfg, (0, 4), torch.zeros(0, 4), (), (0,))


def test_every_basic_loss_module_is_covered():
    """Every basic loss of the loss modules at hand has a case above (a new
    loss in one of these modules needs one line)."""
    from yolo_losses.losses import (cross_entropy_loss, focal_loss, gfocal_loss,
                                    iou_loss, mse_loss, smooth_l1_loss, varifocal_loss)
    from yolo_losses.losses.base import BaseLoss
    from yolo_losses.registry import MODELS
    modules = {m.__name__ for m in (cross_entropy_loss, focal_loss, gfocal_loss, iou_loss,
                                    mse_loss, smooth_l1_loss, varifocal_loss)}
    registered = {name for name, cls in MODELS.module_dict.items()
                  if isinstance(cls, type) and issubclass(cls, BaseLoss)
                  and cls.__module__ in modules}
    covered = {cfg['type'] for cfg, *_ in CASES.values()}
    assert registered and registered <= covered, sorted(registered - covered)


@pytest.mark.parametrize('case', sorted(CASES))
def test_none_on_empty_input_is_the_empty_elementwise_loss(case):
    cfg, pred_shape, target, extra, loss_shape = CASES[case]
    loss = build_loss(cfg)
    pred = torch.zeros(pred_shape, requires_grad=True)
    if cfg.get('activated'):
        pred = (pred.detach() + 0.5).requires_grad_(True)
    value = loss(pred, target, *extra, reduction_override='none')
    assert value.shape == loss_shape
    assert value.requires_grad
    # what callers do with it: reduce per row, then backward
    value.sum(-1).sum().backward()
    assert pred.grad is not None and pred.grad.shape == pred_shape
    for reduction in ('mean', 'sum'):
        reduced = loss(pred, target, *extra, reduction_override=reduction)
        assert reduced.dim() <= 1 and reduced.numel() == 1 and float(reduced.detach()) == 0.0
