"""Layering and state (DESIGN.md "Layering and state", issue 12):

- building and calling a loss imports nothing of the training stack;
- importing the package or building anything leaves torch's
  ``weights_only`` allow-list alone;
- the validation and fused switches are a process default plus a
  per-context override (thread-safe), and a run restores what it changed;
- ``--launcher slurm`` without CUDA fails with a clear error;
- the sigmoid family shares one call path.

Import facts are checked in a fresh interpreter (``subprocess``): the test
process has long imported everything.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap
import threading

import pytest
import torch

import yolo_losses
import yolo_losses.kernels as kernels
from yolo_losses.losses.base import SigmoidClassLoss
from yolo_losses.losses.focal_loss import FocalLoss
from yolo_losses.losses.gfocal_loss import QualityFocalLoss
from yolo_losses.losses.varifocal_loss import VarifocalLoss

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'yolov8', 'yolov8_n_synthetic.py')

# what a loss must not load (DESIGN.md, "Layering and state")
HEAVY = ('cv2', 'mmcv.transforms', 'mmcv.image', 'matplotlib', 'pycocotools',
         'yolo_losses.models', 'yolo_losses.engine', 'yolo_losses.datasets',
         'yolo_losses.evaluation')

PRELUDE = f'''
import json, sys
sys.path.insert(0, {REPO!r})
HEAVY = {HEAVY!r}

def heavy_loaded():
    return sorted(m for m in sys.modules
                  if any(m == h or m.startswith(h + '.') for h in HEAVY))
'''


def run_fresh(body: str, timeout: float = 240) -> dict:
    """Run ``body`` in a fresh interpreter; it prints one JSON line last."""
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop('YOLO_LOSSES_VALIDATE', None)
    env.pop('YOLO_LOSSES_FUSED', None)
    done = subprocess.run([sys.executable, '-c', PRELUDE + textwrap.dedent(body)],
                          capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- 1. a loss costs only the loss -----------------------------------------------

def test_building_and_calling_losses_loads_no_training_stack():
    result = run_fresh('''
        import torch
        import yolo_losses
        from yolo_losses import build_loss
        after_import = heavy_loaded()
        torch.manual_seed(0)

        def call(cfg, *args, **kwargs):
            out = build_loss(cfg)(*args, **kwargs)
            total = sum(out.values()) if isinstance(out, dict) else out
            total.sum().backward()

        logits = torch.randn(8, 5, requires_grad=True)
        call(dict(type='FocalLoss'), logits, torch.randint(0, 6, (8,)))
        call(dict(type='VarifocalLoss'), logits, torch.rand(8, 5))
        call(dict(type='QualityFocalLoss'), logits,
             (torch.randint(0, 6, (8,)), torch.rand(8)))
        call(dict(type='CrossEntropyLoss', use_sigmoid=True), logits, torch.rand(8, 5))
        call(dict(type='DistributionFocalLoss'),
             torch.randn(8, 16, requires_grad=True), torch.rand(8) * 15)
        boxes = torch.tensor([[0., 0., 10., 10.], [5., 5., 20., 30.]])
        for name in ('IoULoss', 'GIoULoss', 'DIoULoss', 'CIoULoss', 'L1Loss',
                     'SmoothL1Loss'):
            call(dict(type=name), (boxes + 1).requires_grad_(), boxes)

        img, c = 64, 3
        targets = torch.tensor([[0, 1, 0.5, 0.5, 0.3, 0.4], [1, 2, 0.3, 0.6, 0.2, 0.2]])
        for name in ('YOLOv3Loss', 'YOLOv5Loss'):
            preds = [torch.randn(2, 3 * (5 + c), img // s, img // s, requires_grad=True)
                     for s in (8, 16, 32)]
            call(dict(type=name, num_classes=c), preds, targets)
        preds = [torch.randn(2, 64 + c, img // s, img // s, requires_grad=True)
                 for s in (8, 16, 32)]
        call(dict(type='YOLOv8Loss', num_classes=c), preds, targets)

        # every registered name still builds (those that need no argument
        # but num_classes), still without the training stack
        built = 0
        for name in sorted(yolo_losses.MODELS.module_dict):
            for extra in ({}, dict(num_classes=c)):
                try:
                    build_loss(dict(type=name, **extra))
                except (TypeError, ValueError, KeyError):
                    continue
                built += 1
                break
        print(json.dumps(dict(after_import=after_import, after_losses=heavy_loaded(),
                              built=built)))
    ''')
    assert result['after_import'] == []
    assert result['after_losses'] == []
    assert result['built'] >= 15


def test_detector_builds_by_name_from_a_fresh_interpreter():
    """The training stack is imported on demand: a detector config builds
    through the package's MODELS and through mmengine's root MODELS under
    ``default_scope='yolo_losses'``."""
    result = run_fresh(f'''
        from mmengine.config import Config
        from mmengine.registry import MODELS as ROOT, DefaultScope
        import yolo_losses
        cfg = Config.fromfile({CONFIG!r})
        yolo_losses.build_loss(dict(type='FocalLoss'))
        before = heavy_loaded()
        model = yolo_losses.MODELS.build(cfg.model)
        names = [type(model).__name__]
        print(json.dumps(dict(before=before, names=names,
                              after=heavy_loaded())))
    ''')
    assert result['before'] == []
    assert result['names'] == ['YOLODetector']
    assert 'yolo_losses.models' in result['after']

    result = run_fresh(f'''
        from mmengine.config import Config
        from mmengine.registry import MODELS as ROOT, DefaultScope
        cfg = Config.fromfile({CONFIG!r})
        with DefaultScope.overwrite_default_scope('yolo_losses'):
            model = ROOT.build(cfg.model)
        print(json.dumps(dict(name=type(model).__name__)))
    ''')
    assert result['name'] == 'YOLODetector'


def test_kernels_import_nothing_of_the_losses():
    """The cycle kernels -> losses -> kernels is gone: every module of
    ``yolo_losses.kernels`` imports without ``yolo_losses.losses``."""
    result = run_fresh('''
        import importlib, pkgutil
        import yolo_losses.kernels as kernels
        for module in pkgutil.iter_modules(kernels.__path__):
            if module.name == 'elementwise' and not kernels.triton_available():
                continue  # the Triton kernels need triton
            importlib.import_module(f'yolo_losses.kernels.{module.name}')
        print(json.dumps(sorted(m for m in sys.modules
                                if m.startswith('yolo_losses.losses'))))
    ''')
    assert result == []


# --- 2. nothing global on import or build ----------------------------------------

def test_import_and_build_leave_the_torch_allow_list_alone(tmp_path):
    """torch adds its own DTensor entries when mmengine.model imports
    torch.distributed (not ours): the snapshot is taken after that."""
    path = str(tmp_path / 'hub.pth')
    result = run_fresh(f'''
        import torch
        import mmengine.model  # torch's own allow-list entries come with it
        from mmengine.logging.history_buffer import HistoryBuffer
        from mmengine.config import Config
        hub = HistoryBuffer()
        hub.update(2.0)
        torch.save(dict(buffer=hub), {path!r})
        snapshot = lambda: sorted(map(repr, torch.serialization.get_safe_globals()))
        before = snapshot()
        import yolo_losses
        yolo_losses.build_loss(dict(type='FocalLoss'))
        yolo_losses.build_loss(dict(type='YOLOv8Loss', num_classes=3))
        yolo_losses.MODELS.build(Config.fromfile({CONFIG!r}).model)
        import yolo_losses.engine.runner
        after_build = snapshot()
        try:
            torch.load({path!r}, weights_only=True)
            user_load = 'loaded'
        except Exception as err:  # the user's own load: no allow-list
            user_load = type(err).__name__
        import yolo_losses.engine as engine
        ours = type(engine.load_checkpoint_file({path!r})['buffer']).__name__
        inside = -1  # no checkpoint_globals context (before issue 12)
        if hasattr(engine, 'checkpoint_globals'):
            with engine.checkpoint_globals():
                inside = len(snapshot()) - len(before)
        print(json.dumps(dict(same=before == after_build, after_load=snapshot() == before,
                              user_load=user_load, ours=ours, inside=inside)))
    ''')
    assert result['same'], 'importing / building changed the allow-list'
    assert result['user_load'] == 'UnpicklingError'
    assert result['ours'] == 'HistoryBuffer'
    assert result['inside'] > 0
    assert result['after_load'], 'a load left entries in the allow-list'


def test_checkpoint_globals_keeps_entries_that_were_there():
    import numpy as np

    from yolo_losses.engine import checkpoint_globals

    before = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals([np.ndarray])
    try:
        with checkpoint_globals():
            pass
        assert np.ndarray in torch.serialization.get_safe_globals()
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)


# --- 3. switches: process default + per-context override -------------------------

def _seen_in_other_thread(switch_enabled, enter_override):
    """What a second thread sees while this thread holds an override open."""
    entered, release = threading.Event(), threading.Event()
    seen = {}

    def holder():
        with enter_override():
            seen['holder'] = switch_enabled()
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert entered.wait(10)
        # a thread without override (not the test's context either)
        other = threading.Thread(target=lambda: seen.setdefault('other', switch_enabled()))
        other.start()
        other.join()
        seen['main'] = switch_enabled()
    finally:
        release.set()
        thread.join()
    return seen


@pytest.mark.parametrize('name', ['validation', 'fused'])
def test_override_holds_only_in_its_own_thread(name):
    enabled = getattr(yolo_losses, f'{name}_enabled')
    override = getattr(yolo_losses, name)
    seen = _seen_in_other_thread(enabled, lambda: override(False))
    assert seen == dict(holder=False, other=True, main=enabled())
    assert seen['main'] is True  # conftest: validation on; fused on by default


def test_validation_override_reaches_losses_per_thread():
    """A loss with ``validate=None`` checks values in a thread without
    override while another thread has validation off."""
    loss = FocalLoss()
    nan_pred = torch.tensor([[float('nan'), 0.0]])
    target = torch.tensor([[1.0, 0.0]])
    seen = _seen_in_other_thread(lambda: loss.validating,
                                 lambda: yolo_losses.validation(False))
    assert seen['holder'] is False and seen['other'] is True
    with pytest.raises(ValueError, match='pred contains NaN'):
        loss(nan_pred, target)


def test_set_default_inside_a_block():
    """``set_*`` sets the process default and the caller's own value; the
    block's exit restores the override it replaced, the default stays."""
    from yolo_losses.switches import Switch

    switch = Switch('demo', 'YOLO_LOSSES_DEMO_UNSET')
    assert switch.enabled() and switch.default
    with switch.override(False):
        assert not switch.enabled()
        switch.set_default(False)
        with switch.override(True):
            assert switch.enabled()
            switch.set_default(True)
        # the inner block's exit restored the outer block's value
        assert switch.enabled() is False and switch.default is True
    assert switch.enabled() and switch.default
    with pytest.raises(TypeError, match='demo switch must be True or False'):
        switch.set_default('off')
    with pytest.raises(TypeError, match='demo switch must be True or False'):
        switch.override('off').__enter__()


def test_runner_restores_the_switches(monkeypatch, tmp_path):
    """train() and test() apply the config's switches for the run only: in
    the run they are what the config says, after it (and in other threads
    during it) what they were."""
    from yolo_losses.engine import runner as runner_module

    seen = []

    class FakeRunner:
        rank = 0
        test_dataloader = None
        model = None

        def train(self):
            seen.append((yolo_losses.validation_enabled(), kernels.fused_enabled()))
            other = {}
            thread = threading.Thread(target=lambda: other.update(
                v=yolo_losses.validation_enabled(), f=kernels.fused_enabled()))
            thread.start()
            thread.join()
            seen.append((other['v'], other['f']))

        test = train

    from mmengine.runner import Runner
    monkeypatch.setattr(Runner, 'from_cfg', classmethod(lambda cls, cfg: FakeRunner()))
    monkeypatch.setattr(runner_module, 'preflight', lambda *args, **kwargs: None)
    options = dict(yolo_losses_validate=False, yolo_losses_fused=False)
    default_before = _default_in_new_thread()
    runner_module.train(CONFIG, work_dir=str(tmp_path), cfg_options=options)
    runner_module.test(CONFIG, 'unused.pth', work_dir=str(tmp_path), cfg_options=options,
                       grid_file=None)
    assert seen == [(False, False), (True, True)] * 2
    assert yolo_losses.validation_enabled() and kernels.fused_enabled()
    assert _default_in_new_thread() == default_before == (True, True)


def _default_in_new_thread():
    out = {}
    thread = threading.Thread(target=lambda: out.update(
        v=yolo_losses.validation_enabled(), f=kernels.fused_enabled()))
    thread.start()
    thread.join()
    return out['v'], out['f']


# --- 6. --launcher slurm without CUDA ----------------------------------------------

@pytest.mark.parametrize('entry', ['train', 'test'])
def test_slurm_without_cuda_fails_clearly(monkeypatch, tmp_path, entry):
    from yolo_losses.engine import runner as runner_module

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setenv('SLURM_PROCID', '0')
    monkeypatch.setenv('SLURM_NTASKS', '1')
    monkeypatch.setenv('SLURM_NODELIST', 'localhost')
    monkeypatch.delenv('SLURM_LOCALID', raising=False)
    work_dir = tmp_path / 'run'
    with pytest.raises(RuntimeError, match='--launcher slurm needs CUDA.*--launcher pytorch'):
        if entry == 'train':
            runner_module.train(CONFIG, work_dir=str(work_dir), launcher='slurm')
        else:
            runner_module.test(CONFIG, str(tmp_path / 'x.pth'), work_dir=str(work_dir),
                               launcher='slurm')
    assert not work_dir.exists()


# --- 8. one call path for the sigmoid family --------------------------------------

@pytest.mark.parametrize('cls', [FocalLoss, VarifocalLoss, QualityFocalLoss])
def test_sigmoid_family_shares_one_call_path(cls, monkeypatch):
    """The three losses run SigmoidClassLoss.forward (checks, validation,
    fused dispatch), not a copy of it: a change to the shared path reaches
    each of them."""
    assert issubclass(cls, SigmoidClassLoss)
    assert 'forward' not in cls.__dict__
    calls = []
    original = SigmoidClassLoss.forward

    def spy(self, *args, **kwargs):
        calls.append(type(self).__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SigmoidClassLoss, 'forward', spy)
    cls()(torch.randn(4, 3), torch.rand(4, 3))
    assert calls == [cls.__name__]


def test_override_is_traceable_by_torch_compile():
    """``torch.compile`` cannot read a ContextVar; the switch mirrors the
    override where it can, so a ``validate=None`` loss compiles as one graph
    inside ``with validation(False)`` (and recompiles when it changes)."""
    loss = FocalLoss()
    compiled = torch.compile(loss, fullgraph=True, backend='eager')
    pred, target = torch.randn(6, 4), torch.rand(6, 4)
    with yolo_losses.validation(False), yolo_losses.fused(False):
        assert torch.allclose(compiled(pred, target), loss(pred, target))
    nan_pred = pred.clone()
    nan_pred[0, 0] = float('nan')
    with yolo_losses.validation(False):
        assert torch.isnan(compiled(nan_pred, target))  # no check ran
