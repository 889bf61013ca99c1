"""tools/train.py, tools/test.py, tools/plot_curves.py end to end on a tiny
schedule, resume after SIGKILL, DDP on two CPU processes, bad inputs, and the
engine pieces (EMA, checkpoint allow-list, CPU AMP, curves).

The subprocess runs use a 64-pixel YOLOv8-n on 8 synthetic images with one
OpenMP thread each, so every run takes seconds.
"""
import json
import math
import os
import os.path as osp
import signal
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from yolo_losses.engine import (CPUAmpOptimWrapper, YOLOExpEMA,
                                checkpoint_safe_globals, load_checkpoint_file,
                                plot_runs)
from yolo_losses.engine.runner import check_config_keys, test as run_test, train
from tiny_runs import tiny_data

pytest.importorskip('pycocotools')

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'yolov8', 'yolov8_n_synthetic.py')

PROBE_MODULE = '''
import os
import signal

import torch
from mmengine.hooks import Hook

from yolo_losses.registry import HOOKS


@HOOKS.register_module()
class ProbeHook(Hook):
    """SIGKILLs its own process at YL_KILL_AT=epoch:iter (1-based) and
    dumps each rank's parameters after training."""

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if os.environ.get('YL_KILL_AT') == f'{runner.epoch + 1}:{batch_idx + 1}':
            os.kill(os.getpid(), signal.SIGKILL)

    def after_train(self, runner):
        model = getattr(runner.model, 'module', runner.model)
        torch.save({k: v.detach().clone() for k, v in model.named_parameters()},
                   os.path.join(runner.work_dir, f'params_rank{runner.rank}.pth'))
'''

TINY_CONFIG = tiny_data(augment=True) + '''\
model = dict(test_cfg=dict(nms_pre=200, max_per_img=30))
train_cfg = dict(max_epochs=3)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=3, T_max=3,
         convert_to_iter_based=True),
]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(max_keep_ckpts=3))
custom_imports = dict(imports=['yl_probe'], allow_failed_imports=False)
custom_hooks = [
    dict(type='EMAHook', ema_type='YOLOExpEMA', decay=0.9999, tau=2000,
         update_buffers=True, priority=49),
    dict(type='CurvesHook'),
    dict(type='ThroughputHook'),
    dict(type='EpochSeedHook'),
    dict(type='ProbeHook'),
]
'''


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny')
    (root / 'yl_probe.py').write_text(PROBE_MODULE)
    config = root / 'tiny_v8.py'
    config.write_text(TINY_CONFIG.format(base=DEFAULT_CONFIG))
    env = dict(os.environ, OMP_NUM_THREADS='1', YL_KILL_AT='',
               PYTHONPATH=os.pathsep.join(
                   [str(root), REPO] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
    return dict(root=root, config=str(config), env=env)


def run_tool(tiny, *args, env=None, timeout=240):
    return subprocess.run([sys.executable, *args], cwd=REPO,
                          env=env or tiny['env'], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope='module')
def trained(tiny):
    """An uninterrupted 3-epoch run (also the reference for resume)."""
    work_dir = tiny['root'] / 'full'
    result = run_tool(tiny, 'tools/train.py', tiny['config'],
                      '--work-dir', str(work_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(work_dir=work_dir, stdout=result.stdout)


def _log_text(work_dir):
    logs = []
    for dirpath, _, files in os.walk(work_dir):
        logs += [osp.join(dirpath, f) for f in files if f.endswith('.log')]
    assert logs, f'no log in {work_dir}'
    return '\n'.join(open(p).read() for p in logs)


@pytest.mark.slow
def test_train_writes_checkpoints_logs_and_curves(trained):
    work_dir = trained['work_dir']
    files = os.listdir(work_dir)
    assert {'epoch_1.pth', 'epoch_2.pth', 'epoch_3.pth', 'last_checkpoint',
            'curves.png', 'curves.json'} <= set(files)
    assert any(f.startswith('best_coco_bbox_mAP_50') for f in files)
    assert open(work_dir / 'curves.png', 'rb').read(8) == b'\x89PNG\r\n\x1a\n'
    curves = json.loads((work_dir / 'curves.json').read_text())
    assert [r['epoch'] for r in curves['train']] == [1, 2, 3]
    assert [r['epoch'] for r in curves['val']] == [1, 2, 3]
    assert {'loss_box', 'loss_cls', 'loss_dfl'} <= set(curves['train'][0])
    assert all(math.isfinite(r['loss_box']) for r in curves['train'])
    log = _log_text(work_dir)
    # per-iteration line: ETA, learning rate, loss components, throughput
    for key in ('eta:', ' lr:', 'loss_box:', 'loss_cls:', 'loss_dfl:',
                'img_per_s:', 'coco/bbox_mAP_50:'):
        assert key in log, key
    assert 'final val mAP@.5:' in trained['stdout']


@pytest.mark.slow
def test_test_tool_prints_map_and_saves_a_grid(tiny, trained):
    out_dir = tiny['root'] / 'test_out'
    result = run_tool(tiny, 'tools/test.py', tiny['config'],
                      str(trained['work_dir'] / 'epoch_3.pth'),
                      '--work-dir', str(out_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'mAP@[.5:.95]:' in result.stdout and 'mAP@.5:' in result.stdout
    log = _log_text(out_dir)
    assert 'per-class AP' in log and 'rectangle' in log
    assert open(out_dir / 'predictions.png', 'rb').read(4) == b'\x89PNG'


@pytest.mark.slow
def test_plot_curves_overlays_runs(tiny, trained, tmp_path):
    out = tmp_path / 'compare.png'
    result = run_tool(tiny, 'tools/plot_curves.py', str(trained['work_dir']),
                      str(trained['work_dir']), '--out', str(out),
                      '--labels', 'a', 'b')
    assert result.returncode == 0, result.stderr[-3000:]
    assert out.read_bytes()[:4] == b'\x89PNG'


@pytest.mark.slow
def test_resume_after_sigkill_matches_the_uninterrupted_run(tiny, trained):
    work_dir = tiny['root'] / 'killed'
    env = dict(tiny['env'], YL_KILL_AT='2:1')  # after epoch 1's checkpoint
    killed = run_tool(tiny, 'tools/train.py', tiny['config'], '--work-dir',
                      str(work_dir), env=env)
    assert killed.returncode == -signal.SIGKILL
    assert osp.isfile(work_dir / 'epoch_1.pth')
    assert not osp.exists(work_dir / 'epoch_2.pth')
    resumed = run_tool(tiny, 'tools/train.py', tiny['config'], '--work-dir',
                       str(work_dir), '--resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed' in _log_text(work_dir).lower()

    ours = load_checkpoint_file(str(work_dir / 'epoch_3.pth'))
    reference = load_checkpoint_file(str(trained['work_dir'] / 'epoch_3.pth'))
    for part in ('state_dict', 'ema_state_dict'):
        assert ours[part].keys() == reference[part].keys()
        for key, value in reference[part].items():
            assert torch.equal(ours[part][key], value), (part, key)
    assert ours['meta']['epoch'] == reference['meta']['epoch'] == 3
    # the curves of the resumed run cover all epochs
    curves = json.loads((work_dir / 'curves.json').read_text())
    assert [r['epoch'] for r in curves['train']] == [1, 2, 3]


@pytest.mark.slow
def test_amp_on_the_cpu_trains_in_bfloat16(tiny):
    work_dir = tiny['root'] / 'amp'
    result = run_tool(tiny, 'tools/train.py', tiny['config'], '--work-dir',
                      str(work_dir), '--amp', '--cfg-options',
                      'train_cfg.max_epochs=1')
    assert result.returncode == 0, result.stderr[-3000:]
    log = _log_text(work_dir)
    assert 'CPUAmpOptimWrapper' in log and "dtype='bfloat16'" in log
    curves = json.loads((work_dir / 'curves.json').read_text())
    assert all(math.isfinite(v) for v in curves['train'][0].values())


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_cpu_processes_end_with_identical_parameters(tiny):
    work_dir = tiny['root'] / 'ddp'
    result = run_tool(tiny, '-m', 'torch.distributed.run', '--nproc_per_node',
                      '2', '--master_port', str(_free_port()), 'tools/train.py',
                      tiny['config'], '--work-dir', str(work_dir),
                      '--launcher', 'pytorch', '--cfg-options',
                      'train_cfg.max_epochs=2')
    assert result.returncode == 0, (result.stdout[-2000:] + result.stderr[-3000:])
    log = _log_text(work_dir)
    assert 'Distributed training: True' in log
    rank0 = torch.load(work_dir / 'params_rank0.pth', weights_only=True)
    rank1 = torch.load(work_dir / 'params_rank1.pth', weights_only=True)
    assert rank0.keys() == rank1.keys() and len(rank0) > 10
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    # 8 images / (2 ranks x 4) = 1 iteration per epoch
    assert 'Epoch(train) [2][1/1]' in log


# --- bad input: clear errors before anything is written --------------------------

def _snapshot(directory):
    return {name: (os.stat(osp.join(directory, name)).st_mtime_ns,
                   open(osp.join(directory, name), 'rb').read())
            for name in sorted(os.listdir(directory))}


@pytest.fixture()
def existing_work_dir(tmp_path):
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / 'epoch_1.pth').write_bytes(b'previous checkpoint')
    (work_dir / 'tiny_v8.py').write_text('# previous config dump')
    return work_dir


def test_missing_data_root_fails_before_writing(tmp_path, existing_work_dir,
                                                monkeypatch):
    monkeypatch.chdir(tmp_path)  # the COCO template's data/shapes_coco is absent
    before = _snapshot(existing_work_dir)
    with pytest.raises(FileNotFoundError, match='data_root'):
        train(osp.join(REPO, 'configs', 'yolov8', 'yolov8_n_coco.py'),
              work_dir=str(existing_work_dir))
    assert _snapshot(existing_work_dir) == before


def test_corrupt_annotation_file_fails_before_writing(tmp_path,
                                                      existing_work_dir,
                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    ann = tmp_path / 'data' / 'shapes_coco' / 'annotations'
    ann.mkdir(parents=True)
    (ann / 'instances_train.json').write_text('{"images": [{"id": 1,')
    (ann / 'instances_val.json').write_text('{}')
    before = _snapshot(existing_work_dir)
    with pytest.raises(ValueError, match='instances_train.json.*not valid JSON'):
        train(osp.join(REPO, 'configs', 'yolov8', 'yolov8_n_coco.py'),
              work_dir=str(existing_work_dir))
    assert _snapshot(existing_work_dir) == before


def test_config_typos_fail_before_writing(existing_work_dir):
    before = _snapshot(existing_work_dir)
    with pytest.raises(KeyError, match="'trian_cfg'.*did you mean 'train_cfg'"):
        train(DEFAULT_CONFIG, work_dir=str(existing_work_dir),
              cfg_options={'trian_cfg': dict(max_epochs=1)})
    with pytest.raises(KeyError, match='YOLOv8Haed.*YOLOv8Head'):
        train(DEFAULT_CONFIG, work_dir=str(existing_work_dir),
              cfg_options={'model.bbox_head.type': 'YOLOv8Haed'})
    with pytest.raises(TypeError, match='num_clases'):
        train(DEFAULT_CONFIG, work_dir=str(existing_work_dir),
              cfg_options={'model.bbox_head.num_clases': 3})
    assert _snapshot(existing_work_dir) == before


def test_checkpoint_of_another_model_fails_before_writing(tmp_path,
                                                          existing_work_dir):
    from mmengine.registry import DefaultScope

    from yolo_losses.registry import MODELS
    v3_cfg = Config.fromfile(osp.join(REPO, 'configs', 'yolov3',
                                      'yolov3_n_synthetic.py'))
    with DefaultScope.overwrite_default_scope('yolo_losses'):
        v3 = MODELS.build(v3_cfg.model)
    checkpoint = tmp_path / 'yolov3.pth'
    torch.save(dict(meta=dict(epoch=1), state_dict=v3.state_dict()), checkpoint)
    before = _snapshot(existing_work_dir)
    with pytest.raises(ValueError, match='does not fit the model'):
        run_test(DEFAULT_CONFIG, str(checkpoint), work_dir=str(existing_work_dir))
    with pytest.raises(ValueError, match='missing keys'):
        train(DEFAULT_CONFIG, work_dir=str(existing_work_dir),
              resume=str(checkpoint))
    with pytest.raises(FileNotFoundError, match='no checkpoint'):
        train(DEFAULT_CONFIG, work_dir=str(tmp_path / 'empty'), resume='auto')
    assert _snapshot(existing_work_dir) == before


def test_check_config_keys_lets_config_variables_pass():
    check_config_keys(Config(dict(img_scale=64, data_root='x', train_cfg={})))
    with pytest.raises(KeyError, match="did you mean 'train_dataloader'"):
        check_config_keys(Config(dict(train_dataloder=dict(dataset={}))))
    with pytest.raises(KeyError, match='needs a "dataset"'):
        check_config_keys(Config(dict(val_dataloader=dict(batch_size=2))))


# --- engine pieces -------------------------------------------------------------

def test_yolo_ema_follows_the_ramped_decay():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = YOLOExpEMA(model, decay=0.9, tau=2.0)
    ema.update_parameters(model)  # first call copies
    assert ema.module.weight.item() == 1.0
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update_parameters(model)
    # updates = steps + 1 = 2: keep = 0.9 * (1 - exp(-2 / 2))
    keep = 0.9 * (1 - math.exp(-1.0))
    assert ema.module.weight.item() == pytest.approx(keep * 1 + (1 - keep) * 3)
    with pytest.raises(ValueError, match='decay'):
        YOLOExpEMA(model, decay=1.0)
    with pytest.raises(ValueError, match='tau'):
        YOLOExpEMA(model, tau=0)


@pytest.mark.slow
def test_checkpoint_allow_list_is_exactly_what_checkpoints_hold(trained):
    def name(obj):
        if isinstance(obj, tuple):  # (replacement, name it stands for)
            return obj[1]
        return f'{obj.__module__}.{obj.__qualname__}'

    from yolo_losses.engine.checkpoint import numpy_dtype_classes

    path = str(trained['work_dir'] / 'epoch_3.pth')
    # what the file needs beyond torch's defaults: ask with the allow-list
    # that importing yolo_losses.engine installed taken away for a moment
    installed = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    finally:
        torch.serialization.add_safe_globals(installed)
    # the dtype classes are checked when a dtype is built, never named
    named = [g for g in checkpoint_safe_globals()
             if g not in numpy_dtype_classes()]
    assert needed == {name(g) for g in named}
    assert load_checkpoint_file(path)['meta']['epoch'] == 3


def test_getattr_in_checkpoints_serves_only_history_buffer_methods(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer

    class Sneaky:
        # getattr(HistoryBuffer.__init__, '__globals__') would reach modules
        def __reduce__(self):
            return (getattr, (HistoryBuffer.__init__, '__globals__'))

    path = tmp_path / 'sneaky.pth'
    torch.save({'state_dict': {}, 'payload': Sneaky()}, path)
    with pytest.raises(ValueError, match='only the statistics methods'):
        load_checkpoint_file(str(path))
    buffer = HistoryBuffer()
    buffer.update(2.0)
    buffer.update(4.0)
    torch.save({'buffer': buffer}, tmp_path / 'ok.pth')
    loaded = load_checkpoint_file(str(tmp_path / 'ok.pth'))['buffer']
    assert loaded.mean() == 3.0 and loaded.max() == 4.0


def test_unsafe_pickles_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': Evil()}, path)
    with pytest.raises(ValueError, match='weights_only=True'):
        load_checkpoint_file(str(path))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_checkpoint_file(str(tmp_path / 'missing.pth'))


def test_cpu_amp_wrapper_runs_matmuls_in_bfloat16():
    model = torch.nn.Linear(4, 2)
    wrapper = CPUAmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    before = model.weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.ones(3, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().square().mean())
    assert torch.isfinite(model.weight).all()
    assert not torch.equal(model.weight, before)
    with pytest.raises(ValueError, match='dtype'):
        CPUAmpOptimWrapper(dtype='int8', optimizer=torch.optim.SGD(
            model.parameters(), lr=0.1))


def test_plot_runs_and_its_errors(tmp_path):
    for name, offset in (('a', 0.0), ('b', 0.5)):
        run = tmp_path / name
        run.mkdir()
        (run / 'curves.json').write_text(json.dumps(dict(
            train=[dict(epoch=e, loss_box=2.0 - e / 10 + offset)
                   for e in (1, 2, 3)],
            val=[dict(epoch=e, **{'coco/bbox_mAP_50': e / 10 + offset})
                 for e in (1, 2, 3)])))
    out = plot_runs([str(tmp_path / 'a'), str(tmp_path / 'b')],
                    str(tmp_path / 'both.png'))
    assert open(out, 'rb').read(4) == b'\x89PNG'
    with pytest.raises(FileNotFoundError, match='curves.json'):
        plot_runs([str(tmp_path)], str(tmp_path / 'x.png'))
    with pytest.raises(ValueError, match='2 labels for 1'):
        plot_runs([str(tmp_path / 'a')], str(tmp_path / 'x.png'), ['x', 'y'])
