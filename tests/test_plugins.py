"""Plugins: installed distributions that declare ``yolo_losses.plugins``.

Each test makes fake installed distributions (a ``*.dist-info`` folder with
``METADATA`` and ``entry_points.txt`` beside the plugin's package) in
``tmp_path``, puts that folder on the path, and runs a fresh Python: the
registry loads plugins once per process.
"""
import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

THEIR_LOSSES = '''
    import torch
    from yolo_losses.losses.base import BaseLoss
    from yolo_losses.losses.utils import weighted_loss
    from yolo_losses.registry import MODELS


    @weighted_loss
    def absolute_cube(pred, target):
        return (pred - target).abs() ** 3


    @MODELS.register_module()
    class TheirLoss(BaseLoss):
        """Cubed absolute error, from a third-party package."""

        def __init__(self, power_scale=1.0, **kwargs):
            super().__init__(**kwargs)
            self.power_scale = power_scale

        def forward(self, pred, target, weight=None, avg_factor=None,
                    reduction_override=None):
            reduction = self.resolve_reduction(reduction_override)
            return self.loss_weight * absolute_cube(
                pred, target, weight, reduction=reduction,
                avg_factor=avg_factor)
'''


def make_distribution(site: Path, dist: str, entry_points: str,
                      files: dict) -> None:
    info = site / f'{dist}-1.0.dist-info'
    info.mkdir(parents=True)
    (info / 'METADATA').write_text(
        f'Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n')
    (info / 'entry_points.txt').write_text(
        '[yolo_losses.plugins]\n' + entry_points + '\n')
    for relative, text in files.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def their_site(tmp_path):
    """A site folder with the distribution ``their-losses`` (package
    ``their_losses``, entry point ``their = their_losses.losses``)."""
    site = tmp_path / 'their_site'
    make_distribution(site, 'their_losses', 'their = their_losses.losses', {
        'their_losses/__init__.py': '',
        'their_losses/losses.py': THEIR_LOSSES})
    return site


@pytest.fixture
def broken_site(tmp_path):
    """A site folder with a plugin whose module raises on import."""
    site = tmp_path / 'broken_site'
    make_distribution(site, 'broken_plugin', 'broken = broken_plugin_mod', {
        'broken_plugin_mod.py': '''
            raise ImportError('needs a library that is not installed')
            '''})
    return site


def run_python(code: str, *args: str, sites=()) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(str(s) for s in sites))
    return subprocess.run(
        [sys.executable, *(['-c', textwrap.dedent(code)] if code else []),
         *args], capture_output=True, text=True, timeout=120, env=env,
        cwd=REPO)


def test_fake_distribution_is_visible_to_importlib_metadata(
        their_site, monkeypatch):
    monkeypatch.syspath_prepend(str(their_site))
    found = metadata.entry_points()
    group = (found.select(group='yolo_losses.plugins')
             if hasattr(found, 'select') else found['yolo_losses.plugins'])
    assert [(ep.name, ep.value) for ep in group
            if ep.name == 'their'] == [('their', 'their_losses.losses')]


def test_plugin_loss_builds_with_no_import_by_the_user(their_site):
    result = run_python('''
        import sys
        import torch
        from yolo_losses.registry import MODELS

        # nothing imported the plugin yet: discovery happens on first lookup
        assert 'their_losses.losses' not in sys.modules
        loss = MODELS.build(dict(type='TheirLoss', loss_weight=2.0))
        print(type(loss).__module__)
        pred = torch.tensor([1.0, -1.0, 3.0])
        target = torch.tensor([0.0, 1.0, 1.0])
        print(float(loss(pred, target, reduction_override='sum')))
        ''', sites=[their_site])
    assert result.returncode == 0, result.stderr
    module, value = result.stdout.split()
    assert module == 'their_losses.losses'
    # 2.0 * (|1|^3 + |-2|^3 + |2|^3) = 2 * 17
    assert float(value) == 34.0
    assert 'RuntimeWarning' not in result.stderr


def test_broken_plugin_warns_and_other_builds_still_work(their_site,
                                                         broken_site):
    result = run_python('''
        import json
        import warnings
        from yolo_losses.registry import MODELS, plugin_errors

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            l1 = MODELS.build(dict(type='L1Loss'))
            their = MODELS.build(dict(type='TheirLoss'))
        print(json.dumps({
            'built': [type(l1).__name__, type(their).__name__],
            'warnings': [[w.category.__name__, str(w.message)]
                         for w in caught],
            'errors': {k: type(v).__name__ for k, v in plugin_errors().items()},
        }))
        ''', sites=[their_site, broken_site])
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report['built'] == ['L1Loss', 'TheirLoss']
    runtime = [message for category, message in report['warnings']
               if category == 'RuntimeWarning']
    assert len(runtime) == 1, report['warnings']
    assert "'broken'" in runtime[0] and 'broken_plugin_mod' in runtime[0]
    assert 'needs a library that is not installed' in runtime[0]
    assert report['errors'] == {'broken': 'ImportError'}


def test_list_losses_lists_the_plugin_loss(their_site, broken_site):
    result = run_python('', str(REPO / 'tools' / 'list_losses.py'), '--json',
                        sites=[their_site, broken_site])
    assert result.returncode == 0, result.stderr
    records = {r['name']: r for r in json.loads(result.stdout)}
    assert records['TheirLoss'] == {
        'name': 'TheirLoss', 'module': 'their_losses.losses',
        'plugin': 'their',
        'summary': 'Cubed absolute error, from a third-party package.',
        'arguments': [
            {'name': 'power_scale', 'default': 1.0, 'required': False},
            {'name': 'reduction', 'default': 'mean', 'required': False},
            {'name': 'loss_weight', 'default': 1.0, 'required': False},
            {'name': 'validate', 'default': None, 'required': False}]}
    assert 'L1Loss' in records and records['L1Loss']['plugin'] is None
    # the broken plugin is reported on stderr, the listing still works
    assert 'RuntimeWarning' in result.stderr and "'broken'" in result.stderr

