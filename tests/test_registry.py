"""The registry: building by name, errors, custom_imports, default scope, and
the validation switch."""
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import DefaultScope

import yolo_losses
from yolo_losses import LOSSES, MODELS, build_loss
from yolo_losses.losses.base import BaseLoss

BASIC_LOSSES = ['SmoothL1Loss', 'L1Loss', 'MSELoss', 'CrossEntropyLoss',
                'FocalLoss', 'VarifocalLoss', 'QualityFocalLoss',
                'DistributionFocalLoss', 'IoULoss', 'GIoULoss', 'DIoULoss',
                'CIoULoss', 'EIoULoss', 'SIoULoss']


@pytest.mark.parametrize('name', BASIC_LOSSES)
def test_every_basic_loss_builds_by_name(name):
    loss = MODELS.build(dict(type=name, reduction='sum', loss_weight=2.0))
    assert type(loss).__name__ == name
    assert isinstance(loss, BaseLoss)
    assert type(loss).__module__.startswith('yolo_losses.losses.')
    assert (loss.reduction, loss.loss_weight) == ('sum', 2.0)
    default = build_loss(dict(type=name))
    assert (default.reduction, default.loss_weight) == ('mean', 1.0)
    assert MODELS.get(name) is type(loss) and LOSSES is MODELS


def test_build_loss_builds_a_working_loss():
    loss = build_loss(dict(type='L1Loss', loss_weight=0.5))
    value = loss(torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.0, 0.0, 0.5]))
    # 0.5 * mean(|1|, |-2|, |0|) = 0.5
    assert value.item() == pytest.approx(0.5)
    # default_args fill what the config leaves out, as in mmengine
    assert build_loss(dict(type='L1Loss'), loss_weight=3.0).loss_weight == 3.0
    with pytest.raises(TypeError, match='"type"'):
        build_loss(dict(loss_weight=1.0))
    with pytest.raises(TypeError, match='"type"'):
        build_loss('L1Loss')


def test_unknown_type_names_it_and_lists_close_names():
    with pytest.raises(KeyError) as info:
        MODELS.build(dict(type='FocalLos'))
    message = str(info.value)
    assert "'FocalLos'" in message
    close = message.split('Closest registered names: ')[1].split('.')[0]
    assert close.split(', ')[0] == 'FocalLoss'
    with pytest.raises(KeyError, match=r"'GIOULoss'.*GIoULoss"):
        build_loss(dict(type='GIOULoss'))
    with pytest.raises(KeyError, match='No similar name is registered'):
        build_loss(dict(type='Zzzqqqxxx'))


def test_unknown_constructor_argument_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="'gama'"):
        build_loss(dict(type='FocalLoss', gama=2.0))
    with pytest.raises(TypeError, match="'betaa'"):
        MODELS.build(dict(type='SmoothL1Loss', betaa=0.1))


@pytest.mark.parametrize('name', ['L1Loss', 'FocalLoss', 'GIoULoss'])
def test_bad_reduction_is_a_value_error(name):
    with pytest.raises(ValueError, match="reduction.*'avg'"):
        build_loss(dict(type=name, reduction='avg'))
    loss = build_loss(dict(type=name))
    with pytest.raises(ValueError, match="reduction_override.*'avg'"):
        loss(torch.zeros(1, 4), torch.zeros(1, 4), reduction_override='avg')


USER_MODULE = '''
    from yolo_losses.losses.base import BaseLoss
    from yolo_losses.registry import MODELS


    @MODELS.register_module()
    class {name}(BaseLoss):
        """Twice the sum of the prediction, ignoring the target."""

        def forward(self, pred, target, weight=None, avg_factor=None,
                    reduction_override=None):
            return self.loss_weight * 2 * pred.sum()
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A user's module in tmp_path that registers ``RegistryTestUserLoss``;
    unregistered and unimported afterwards."""
    module, name = 'registry_test_user_losses', 'RegistryTestUserLoss'
    (tmp_path / f'{module}.py').write_text(
        textwrap.dedent(USER_MODULE.format(name=name)))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield module, name
    MODELS.module_dict.pop(name, None)
    sys.modules.pop(module, None)


def test_custom_imports_in_a_config_register_a_user_module(
        tmp_path, user_module):
    module, name = user_module
    assert name not in MODELS.module_dict
    config_file = tmp_path / 'user_config.py'
    config_file.write_text(textwrap.dedent(f'''
        default_scope = 'yolo_losses'
        custom_imports = dict(imports=['{module}'], allow_failed_imports=False)
        loss = dict(type='{name}', loss_weight=1.5)
        '''))
    cfg = Config.fromfile(str(config_file))
    loss = MODELS.build(cfg.loss)
    assert type(loss).__name__ == name and type(loss).__module__ == module
    # 1.5 * 2 * (1 + 2 + 3)
    assert loss(torch.tensor([1.0, 2.0, 3.0]), None).item() == 18.0


def test_default_scope_builds_from_mmengine_root_registry():
    with DefaultScope.overwrite_default_scope('yolo_losses'):
        loss = MMENGINE_MODELS.build(dict(type='FocalLoss', gamma=1.0))
    assert type(loss) is MODELS.get('FocalLoss') and loss.gamma == 1.0
    # with another scope the root registry does not see our names ...
    with DefaultScope.overwrite_default_scope('mmengine'):
        with pytest.raises(KeyError, match='FocalLoss'):
            MMENGINE_MODELS.build(dict(type='FocalLoss'))
        # ... unless the name carries our scope prefix
        loss = MMENGINE_MODELS.build(dict(type='yolo_losses.GIoULoss'))
    assert type(loss) is MODELS.get('GIoULoss')


def test_validation_switch_and_context_manager():
    nan_pred = torch.tensor([float('nan'), 1.0])
    target = torch.zeros(2)
    follows = build_loss(dict(type='L1Loss'))  # validate=None
    always = build_loss(dict(type='L1Loss', validate=True))
    never = build_loss(dict(type='L1Loss', validate=False))
    assert yolo_losses.validation_enabled()  # conftest turns it on
    with pytest.raises(ValueError, match='pred'):
        follows(nan_pred, target)

    with yolo_losses.validation(False):
        assert not yolo_losses.validation_enabled()
        assert not follows.validating and always.validating
        assert torch.isnan(follows(nan_pred, target))  # no check, no error
        with pytest.raises(ValueError, match='pred'):
            always(nan_pred, target)
    assert yolo_losses.validation_enabled() and follows.validating
    assert not never.validating and torch.isnan(never(nan_pred, target))

    # the context manager restores the previous state after an exception
    with pytest.raises(RuntimeError, match='inside'):
        with yolo_losses.validation(False):
            raise RuntimeError('inside')
    assert yolo_losses.validation_enabled()

    try:
        yolo_losses.set_validation(False)
        assert not yolo_losses.validation_enabled() and not follows.validating
        with yolo_losses.validation(True):
            assert follows.validating
        assert not yolo_losses.validation_enabled()
    finally:
        yolo_losses.set_validation(True)
    with pytest.raises(ValueError, match='pred'):
        follows(nan_pred, target)
