"""tools/list_losses.py and the catalog behind it (yolo_losses.catalog)."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from mmengine.registry import Registry
from torch import nn

from yolo_losses.catalog import (Argument, LossInfo, constructor_arguments,
                                 describe_registered_losses, format_markdown,
                                 format_table, is_loss_class, losses_as_json)
from yolo_losses.losses.base import BaseLoss

REPO = Path(__file__).resolve().parents[1]
BASIC_LOSSES = ['SmoothL1Loss', 'L1Loss', 'MSELoss', 'CrossEntropyLoss',
                'FocalLoss', 'VarifocalLoss', 'QualityFocalLoss',
                'DistributionFocalLoss', 'IoULoss', 'GIoULoss', 'DIoULoss',
                'CIoULoss', 'EIoULoss', 'SIoULoss']


SUMMARY = ('Huber-like loss, e.g. smooth L1 with its knee at ``delta``, '
           'wrapped over two lines.')


class HuberishLoss(BaseLoss):
    """Huber-like loss, e.g. smooth L1 with its knee at ``delta``, wrapped
    over two lines. A second sentence.

    Args:
        delta: knee.
    """

    def __init__(self, delta: float, scale=(1, 2), **kwargs):
        super().__init__(**kwargs)
        self.delta, self.scale = delta, scale


class Penalty(BaseLoss):
    pass  # no docstring of its own: BaseLoss's must not be shown


class TinyDetector(nn.Module):
    """Not a loss."""


class NotAModuleLoss:
    """Named like a loss, but no nn.Module."""


def toy_registry():
    registry = Registry('catalog_test_models')
    for cls in (HuberishLoss, Penalty, TinyDetector, NotAModuleLoss):
        registry.register_module(module=cls)
    return registry


def test_loss_rule():
    assert is_loss_class(HuberishLoss) and is_loss_class(Penalty)
    assert is_loss_class(nn.SmoothL1Loss)  # torch's own, by its name
    assert not is_loss_class(TinyDetector)
    assert not is_loss_class(NotAModuleLoss)
    assert not is_loss_class(HuberishLoss(delta=1.0))  # instances are not


def test_constructor_arguments_follow_kwargs_to_the_base():
    assert constructor_arguments(HuberishLoss) == [
        Argument('delta', None, True), Argument('scale', (1, 2)),
        Argument('reduction', 'mean'), Argument('loss_weight', 1.0),
        Argument('validate', None)]
    assert [str(a) for a in constructor_arguments(HuberishLoss)] == [
        'delta', 'scale=(1, 2)', "reduction='mean'", 'loss_weight=1.0',
        'validate=None']


def test_describe_a_registry():
    losses = describe_registered_losses(toy_registry())
    assert [info.name for info in losses] == ['HuberishLoss', 'Penalty']
    huber, penalty = losses
    # the first sentence only, joined over its two lines; 'e.g. smooth' does
    # not end it
    assert huber.summary == SUMMARY
    assert penalty.summary == ''
    assert huber.module == __name__ and huber.plugin is None

    records = json.loads(losses_as_json(losses))
    assert records[0] == {
        'name': 'HuberishLoss', 'module': __name__, 'plugin': None,
        'summary': SUMMARY,
        'arguments': [
            {'name': 'delta', 'default': None, 'required': True},
            {'name': 'scale', 'default': [1, 2], 'required': False},
            {'name': 'reduction', 'default': 'mean', 'required': False},
            {'name': 'loss_weight', 'default': 1.0, 'required': False},
            {'name': 'validate', 'default': None, 'required': False}]}

    table = format_table(losses).splitlines()
    assert table[0].split() == ['Loss', 'Description', 'Arguments',
                                '(defaults)']
    assert set(table[1]) == {'-', ' '}
    assert table[2] == (
        f'HuberishLoss  {SUMMARY}  delta, '
        "scale=(1, 2), reduction='mean', loss_weight=1.0, validate=None")
    assert table[3] == ('Penalty       ' + ' ' * len(SUMMARY) + "  reduction="
                        "'mean', loss_weight=1.0, validate=None")

    markdown = format_markdown(losses).splitlines()
    assert markdown[2] == (
        f'| `HuberishLoss` | {SUMMARY} | '
        "`delta, scale=(1, 2), reduction='mean', loss_weight=1.0, "
        "validate=None` |")


def test_plugin_losses_are_marked_in_the_tables():
    info = LossInfo('TheirLoss', 'their_losses.losses', 'their',
                    [Argument('power', 3)], 'Cubed error.')
    assert format_table([info]).splitlines()[2] == (
        'TheirLoss  Cubed error. [plugin their]  power=3')
    assert format_markdown([info]).splitlines()[2] == (
        '| `TheirLoss` | Cubed error. [plugin their] | `power=3` |')


def run_tool(*args, cwd=REPO, extra_path=None):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    if extra_path is not None:
        env['PYTHONPATH'] = os.pathsep.join(
            [str(extra_path)] + [p for p in [env.get('PYTHONPATH')] if p])
    return subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'list_losses.py'), *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


def test_tool_json_lists_the_package_losses_and_imported_ones(tmp_path):
    (tmp_path / 'catalog_user_module.py').write_text(textwrap.dedent('''
        from torch import nn
        from yolo_losses.losses.base import BaseLoss
        from yolo_losses.registry import MODELS

        @MODELS.register_module()
        class CatalogUserLoss(BaseLoss):
            """A user's loss."""

            def __init__(self, margin=0.5, **kwargs):
                super().__init__(**kwargs)

        @MODELS.register_module()
        class CatalogUserDetector(nn.Module):
            """A model of the training stack, not a loss."""
        '''))
    result = run_tool('--json', '--import', 'catalog_user_module',
                      extra_path=tmp_path)
    assert result.returncode == 0, result.stderr
    records = {r['name']: r for r in json.loads(result.stdout)}
    missing = [name for name in BASIC_LOSSES if name not in records]
    assert not missing, f'not listed: {missing}'
    assert 'CatalogUserDetector' not in records
    assert records['CatalogUserLoss'] == {
        'name': 'CatalogUserLoss', 'module': 'catalog_user_module',
        'plugin': None, 'summary': "A user's loss.",
        'arguments': [
            {'name': 'margin', 'default': 0.5, 'required': False},
            {'name': 'reduction', 'default': 'mean', 'required': False},
            {'name': 'loss_weight', 'default': 1.0, 'required': False},
            {'name': 'validate', 'default': None, 'required': False}]}
    for name in BASIC_LOSSES:
        record = records[name]
        assert record['module'].startswith('yolo_losses.losses.'), record
        assert record['summary'], f'{name} has no docstring summary'
        defaults = {a['name']: a['default'] for a in record['arguments']}
        assert defaults['reduction'] == 'mean', record
        assert defaults['loss_weight'] == 1.0, record


def test_tool_prints_a_plain_table():
    result = run_tool()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ['Loss', 'Description']
    names = [line.split()[0] for line in lines[2:]]
    assert names == sorted(names)
    assert set(BASIC_LOSSES) <= set(names)
    focal = next(line for line in lines if line.startswith('FocalLoss '))
    assert 'gamma=2.0' in focal and 'alpha=0.25' in focal


MODERN_BOX_LOSSES = {
    'WIoULoss': 'Instinct323/wiou', 'MPDIoULoss': '2307.07662',
    'InnerIoULoss': 'malagoutou/Inner-IoU', 'FocalerIoULoss': 'malagoutou/Focaler-IoU',
    'ShapeIoULoss': 'malagoutou/Shape-IoU', 'NWDLoss': 'jwwangchn/NWD',
    'AlphaIoULoss': 'Jacobi93/Alpha-IoU', 'EfficientIoULoss': 'objectdetection_script',
    'PIoULoss': 'fppccc/Powerful-IoU'}


def test_modern_box_losses_are_listed_with_their_references():
    records = {r['name']: r for r in json.loads(losses_as_json(describe_registered_losses()))}
    for name, source in MODERN_BOX_LOSSES.items():
        assert source in records[name].get('reference', ''), records[name]
    assert 'AI-TOD' in records['NWDLoss']['reference']
    assert "NOT mmdet's EIoULoss" in records['EfficientIoULoss']['reference']
    table = format_table(describe_registered_losses())
    wiou = next(line for line in table.splitlines() if line.startswith('WIoULoss '))
    assert 'Reference: Instinct323/wiou' in wiou and "version='v3'" in wiou
    # losses without a reference keep the old JSON record (no 'reference' key)
    assert 'reference' not in records['FocalLoss']
