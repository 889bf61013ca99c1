"""The loss lab (tools/compare.py): override parsing, the matrix and its
resume rules with a fake trainer, the report on fixed numbers, and the real
command end to end on a 64-pixel YOLOv8-n with 8 built-in images.
"""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from yolo_losses.lab import Variant, parse_overrides, plan, run_lab
from yolo_losses.lab.compare import read_val_curve, run_state
from tiny_runs import tiny_data

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'yolov8', 'yolov8_n_synthetic.py')

TINY_CONFIG = tiny_data() + '''\
model = dict(test_cfg=dict(nms_pre=200, max_per_img=30))
train_cfg = dict(max_epochs={epochs})
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)]
default_hooks = dict(logger=dict(interval=1))
'''


@pytest.fixture()
def tiny_config(tmp_path):
    path = tmp_path / 'tiny.py'
    path.write_text(TINY_CONFIG.format(base=DEFAULT_CONFIG, epochs=2))
    return str(path)


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'compare_tool', osp.join(REPO, 'tools', 'compare.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- overrides and the command line ----------------------------------------------

def test_overrides_are_parsed_as_mmengine_dictaction_parses_them():
    parsed = parse_overrides([
        'model.bbox_head.loss.loss_bbox.type=SIoULoss', 'a=1', 'b=0.5',
        'c=True', 'd=None', 'e=[1,2]', 'f=(1,2)', 'g=x,y', 'h=a=b'])
    assert parsed == {'model.bbox_head.loss.loss_bbox.type': 'SIoULoss',
                      'a': 1, 'b': 0.5, 'c': True, 'd': None, 'e': [1, 2],
                      'f': (1, 2), 'g': ['x', 'y'], 'h': 'a=b'}
    assert type(parsed['a']) is int and type(parsed['e']) is list
    with pytest.raises(ValueError, match="KEY=VALUE, got 'novalue'"):
        parse_overrides(['novalue'])


def test_cli_keeps_variants_in_order_first_is_baseline(capsys):
    tool = load_tool()
    args = tool.parse_args([
        'base.py', '--variant', 'ciou', 'model.x=1', 'model.y=[1,2]',
        '--variant-config', 'vfl', 'other.py', '--variant', 'plain',
        '--seeds', '0', '1', '--work-dir', 'out', '--cfg-options',
        'train_cfg.max_epochs=1', '--jobs', '2'])
    assert [v.name for v in args.variants] == ['ciou', 'vfl', 'plain']
    assert args.variants[0].overrides == {'model.x': 1, 'model.y': [1, 2]}
    assert args.variants[0].args == ['model.x=1', 'model.y=[1,2]']
    assert args.variants[1].config == 'other.py'
    assert args.variants[2].overrides == {}
    assert args.seeds == [0, 1] and args.jobs == 2
    assert args.cfg_options == ['train_cfg.max_epochs=1']
    assert args.launcher == 'none'
    for bad, message in (
            (['--variant', 'a=1'], 'first value is the variant'),
            (['--variant', 'a', 'noequals'], 'KEY=VALUE'),
            (['--variant', 'a', 'x=1', '--jobs', '0'], '--jobs must be >= 1')):
        with pytest.raises(SystemExit):
            tool.parse_args(['base.py', *bad, '--seeds', '0', '--work-dir', 'o'])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --seeds is required
        tool.parse_args(['base.py', '--variant', 'a', '--work-dir', 'o'])
    with pytest.raises(SystemExit):
        tool.parse_args(['--help'])
    assert 'parallel runs share the cores' in ' '.join(
        capsys.readouterr().out.split())


def test_plan_gives_each_run_the_same_options_plus_its_seed(tiny_config, tmp_path):
    variants = [Variant('ciou'), Variant('giou', [
        'model.bbox_head.loss.loss_bbox.type=GIoULoss',
        'model.bbox_head.loss.loss_bbox.loss_weight=7.5'])]
    specs = plan(tiny_config, variants, [3, 7], str(tmp_path / 'lab'),
                 ['train_cfg.max_epochs=1'])
    assert [(s.variant.name, s.seed) for s in specs] == [
        ('ciou', 3), ('ciou', 7), ('giou', 3), ('giou', 7)]
    assert specs[0].work_dir == str(tmp_path / 'lab' / 'ciou' / 'seed_3')
    assert specs[0].cfg_options == ['train_cfg.max_epochs=1', 'randomness.seed=3']
    assert specs[3].cfg_options == [
        'train_cfg.max_epochs=1', 'model.bbox_head.loss.loss_bbox.type=GIoULoss',
        'model.bbox_head.loss.loss_bbox.loss_weight=7.5', 'randomness.seed=7']
    assert specs[0].max_epochs == 1
    # loss_bbox is absent from the config: the override builds a whole new
    # dict, and the lab says so
    assert variants[1].created == [('model.bbox_head.loss.loss_bbox',
                                    ['loss_weight', 'type'])]
    assert variants[0].created == []
    with pytest.raises(ValueError, match='sets randomness.seed'):
        plan(tiny_config, [Variant('a', ['randomness.seed=1'])], [0], 'x')
    with pytest.raises(ValueError, match='sets randomness.seed'):
        plan(tiny_config, [Variant('a')], [0], 'x', ['randomness.seed=1'])
    with pytest.raises(ValueError, match='unique'):
        plan(tiny_config, [Variant('a'), Variant('a')], [0], 'x')
    with pytest.raises(ValueError, match='distinct'):
        plan(tiny_config, [Variant('a')], [0, 0], 'x')
    with pytest.raises(ValueError, match='names a directory'):
        plan(tiny_config, [Variant('a/b')], [0], 'x')
    with pytest.raises(FileNotFoundError, match='missing.py'):
        plan(tiny_config, [Variant('a', config='missing.py')], [0], 'x')
    with pytest.raises(KeyError, match="did you mean 'train_cfg'"):
        plan(tiny_config, [Variant('a', ['trian_cfg.max_epochs=1'])], [0], 'x')


# --- the matrix with a fake trainer ----------------------------------------------

class FakeTrainer:
    """Writes what tools/train.py would (mmengine's scalars.json, a
    last_checkpoint) with fixed final mAP@.5 values; records its calls."""

    def __init__(self, finals, fail=()):
        self.finals = finals  # (variant, seed) -> final mAP@.5
        self.fail = set(fail)
        self.calls = []

    def __call__(self, spec, resume, on_line, env):
        self.calls.append((spec.variant.name, spec.seed, resume))
        key = (spec.variant.name, spec.seed)
        on_line('Epoch(train) [1][1/2]  lr: 1.0e-03  eta: 0:00:07  loss: 1.0\n')
        if key in self.fail:
            on_line('Traceback (most recent call last): boom\n')
            return 1
        session = osp.join(spec.work_dir, f'session_{len(self.calls):03d}',
                           'vis_data')
        os.makedirs(session)
        final = self.finals[key]
        first = 2 if resume else 1  # a resumed run logs the epochs it trains
        with open(osp.join(session, 'scalars.json'), 'w') as handle:
            for epoch in range(first, spec.max_epochs + 1):
                handle.write(json.dumps(dict(loss=1.0, step=epoch * 2)) + '\n')
                handle.write(json.dumps({
                    'coco/bbox_mAP': final / 2 * epoch / spec.max_epochs,
                    'coco/bbox_mAP_50': final * epoch / spec.max_epochs,
                    'step': epoch}) + '\n')
        with open(osp.join(spec.work_dir, 'last_checkpoint'), 'w') as handle:
            handle.write(osp.join(spec.work_dir, f'epoch_{spec.max_epochs}.pth'))
        return 0


@pytest.fixture()
def no_plots(monkeypatch):
    """compare.png is drawn once (test_report_on_fixed_numbers); drawing
    it after every fake run would only cost time. Yields the real one."""
    import yolo_losses.lab.report as report_module

    real = report_module.plot_report
    monkeypatch.setattr(report_module, 'plot_report', lambda report, out: out)
    return real


FINALS = {('base', 0): 0.50, ('base', 1): 0.40, ('base', 2): 0.60,
          ('new', 0): 0.51, ('new', 1): 0.43, ('new', 2): 0.62}


def lab(tiny_config, work_dir, trainer, seeds=(0, 1, 2)):
    variants = [Variant('base'), Variant('new', ['model.test_cfg.iou_thr=0.6'])]
    out = []

    class Stream:
        def write(self, text):
            out.append(text)

        def flush(self):
            pass

    report = run_lab(tiny_config, variants, list(seeds), str(work_dir),
                     trainer=trainer, stream=Stream(), progress_interval=0)
    return report, ''.join(out)


def test_report_on_fixed_numbers(no_plots, tiny_config, tmp_path):
    report, console = lab(tiny_config, tmp_path / 'lab', FakeTrainer(FINALS))
    assert report == json.loads((tmp_path / 'lab' / 'report.json').read_text())
    assert report['seeds'] == [0, 1, 2] and report['metric'] == 'coco/bbox_mAP_50'
    assert report['base_config'] == tiny_config
    base, new = report['variants']
    assert base['name'] == 'base' and base['overrides'] == {}
    assert new['overrides'] == {'model.test_cfg.iou_thr': 0.6}
    assert [r['seed'] for r in new['runs']] == [0, 1, 2]
    run = new['runs'][1]
    assert run['status'] == 'done'
    assert run['work_dir'] == str(tmp_path / 'lab' / 'new' / 'seed_1')
    assert run['final'] == pytest.approx({'mAP': 0.215, 'mAP50': 0.43})
    assert run['seconds'] >= 0
    # base mAP@.5 0.50, 0.40, 0.60: mean 0.50, sd sqrt((.01 + .01) / 2) = 0.1;
    # new 0.51, 0.43, 0.62: mean 0.52, sd sqrt((.0001 + .0081 + .01) / 2) = 0.0954
    assert base['mean']['mAP50'] == pytest.approx(0.50)
    assert base['std']['mAP50'] == pytest.approx(0.10)
    assert base['diff_vs_baseline'] is None and base['verdict'] is None
    # differences 0.01, 0.03, 0.02: mean 0.02, sd 0.01,
    # half width 4.302653 * 0.01 / sqrt(3) = 0.0248414 -> crosses 0
    diff = new['diff_vs_baseline']['mAP50']
    assert diff['mean'] == pytest.approx(0.02)
    assert diff['ci95'] == pytest.approx([0.02 - 0.0248414, 0.02 + 0.0248414],
                                         abs=1e-7)
    assert diff['method'] == 't'
    # mAP is half of mAP@.5 here: differences halve, and so does the interval
    assert new['diff_vs_baseline']['mAP']['ci95'] == pytest.approx(
        [0.01 - 0.0124207, 0.01 + 0.0124207], abs=1e-7)
    assert new['verdict'] == 'no difference detected'
    assert report['warnings'] == []
    md = (tmp_path / 'lab' / 'report.md').read_text()
    assert 'no difference detected at this budget' in md
    assert '| new | 3/3 | 0.2600 ± 0.0477 | 0.5200 ± 0.0954 |' in md
    assert "Student's t" in md
    png = tmp_path / 'compare.png'
    no_plots(report, str(png))
    assert png.read_bytes()[:4] == b'\x89PNG'
    # progress: a line per run with variant, seed, epoch and ETA, and an end line
    assert '[new seed 2] epoch 1/2 iter 1/2 eta 0:00:07' in console
    assert '[new seed 2] done in' in console and 'mAP50 0.6200' in console
    assert '(6/6 runs ended)' in console


def test_finished_runs_are_skipped_and_an_interrupted_one_resumes(no_plots, tiny_config,
                                                                   tmp_path):
    work_dir = tmp_path / 'lab'
    lab(tiny_config, work_dir, FakeTrainer(FINALS))
    # make new/seed_1 look killed after epoch 1: no marker, a checkpoint,
    # only the first epoch's scalars
    run_dir = work_dir / 'new' / 'seed_1'
    os.remove(run_dir / 'lab_status.json')
    scalars = run_dir / 'session_005' / 'vis_data' / 'scalars.json'
    scalars.write_text(''.join(scalars.read_text().splitlines(True)[:2]))
    assert run_state(str(run_dir)) == 'interrupted'
    trainer = FakeTrainer(FINALS)
    report, console = lab(tiny_config, work_dir, trainer)
    assert trainer.calls == [('new', 1, True)]  # only it, and with --resume
    assert console.count('already done, skipped') == 5
    assert '[new seed 1] resuming' in console
    # its curve joins the two sessions' epochs
    assert [r['epoch'] for r in read_val_curve(str(run_dir))] == [1, 2]
    assert report['variants'][1]['runs'][1]['final']['mAP50'] == pytest.approx(0.43)
    # a third time nothing trains
    trainer = FakeTrainer(FINALS)
    lab(tiny_config, work_dir, trainer)
    assert trainer.calls == []


def test_a_failed_run_is_marked_and_the_rest_go_on(no_plots, tiny_config, tmp_path):
    work_dir = tmp_path / 'lab'
    trainer = FakeTrainer(FINALS, fail=[('base', 1)])
    report, console = lab(tiny_config, work_dir, trainer, seeds=(0, 1))
    assert len(trainer.calls) == 4
    runs = {(v['name'], r['seed']): r for v in report['variants'] for r in v['runs']}
    failed = runs[('base', 1)]
    assert failed['status'] == 'failed' and failed['final'] is None
    assert failed['log'] == str(work_dir / 'base' / 'seed_1' / 'train.log')
    assert 'boom' in open(failed['log']).read()
    assert 'exited with 1' in failed['error']
    assert '[base seed 1] FAILED' in console and failed['log'] in console
    assert all(runs[k]['status'] == 'done' for k in runs if k != ('base', 1))
    # one shared seed: a difference but no interval; fewer than 3 seeds warned
    new = report['variants'][1]
    assert new['diff_vs_baseline']['mAP50']['mean'] == pytest.approx(0.01)
    assert new['diff_vs_baseline']['mAP50']['ci95'] is None
    assert new['verdict'] == 'no difference detected'
    assert any('fewer than 3 seeds' in w for w in report['warnings'])
    md = (work_dir / 'report.md').read_text()
    assert 'Warning' in md and f'failed (log `{failed["log"]}`)' in md
    # the next call retries only the failed run
    trainer = FakeTrainer(FINALS)
    report, _ = lab(tiny_config, work_dir, trainer, seeds=(0, 1))
    assert trainer.calls == [('base', 1, False)]
    assert report['variants'][0]['runs'][1]['status'] == 'done'


def test_a_trainer_that_raises_fails_only_its_run(no_plots, tiny_config, tmp_path):
    def trainer(spec, resume, on_line, env):
        if spec.seed == 0:
            raise OSError('disk full')
        return FakeTrainer(FINALS)(spec, resume, on_line, env)

    report, _ = lab(tiny_config, tmp_path / 'lab', trainer, seeds=(0, 1))
    statuses = [(r['seed'], r['status']) for v in report['variants']
                for r in v['runs']]
    assert statuses == [(0, 'failed'), (1, 'done')] * 2
    assert report['variants'][0]['runs'][0]['error'] == 'OSError: disk full'


# --- the real command --------------------------------------------------------------

def run_compare(args, tmp_path, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(
                   [REPO] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
    return subprocess.run([sys.executable, osp.join(REPO, 'tools', 'compare.py'),
                           *args], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_end_to_end_two_variants_two_seeds_with_a_real_resume(tiny_config,
                                                              tmp_path):
    """2 variants x 2 seeds x 2 epochs through the real command; ciou seed 0
    was interrupted after epoch 1 (tools/train.py stopped there, as a kill
    after epoch 1's checkpoint leaves it) and must resume, not restart."""
    pytest.importorskip('pycocotools')
    work_dir = tmp_path / 'lab'
    killed = work_dir / 'ciou' / 'seed_0'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    first = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), tiny_config,
         '--work-dir', str(killed), '--cfg-options', 'train_cfg.max_epochs=1',
         'randomness.seed=0'], env=env, capture_output=True, text=True,
        timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert run_state(str(killed)) == 'interrupted'

    args = [tiny_config, '--variant', 'ciou',
            '--variant', 'siou', 'model.bbox_head.loss.loss_bbox.type=SIoULoss',
            'model.bbox_head.loss.loss_bbox.loss_weight=7.5',
            '--seeds', '0', '1', '--work-dir', str(work_dir), '--jobs', '2']
    result = run_compare(args, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((work_dir / 'report.json').read_text())
    assert [v['name'] for v in report['variants']] == ['ciou', 'siou']
    for variant in report['variants']:
        assert [r['seed'] for r in variant['runs']] == [0, 1]
        for run in variant['runs']:
            assert run['status'] == 'done', run
            assert set(run['final']) == {'mAP', 'mAP50'}
            assert all(0.0 <= v <= 1.0 for v in run['final'].values())
            assert run['final']['mAP50'] == run['curve'][-1]['mAP50']
            assert [r['epoch'] for r in run['curve']] == [1, 2]
            assert run['seconds'] > 0
            assert osp.isfile(osp.join(run['work_dir'], 'epoch_2.pth'))
        assert set(variant['mean']) == set(variant['std']) == {'mAP', 'mAP50'}
    siou = report['variants'][1]
    assert set(siou['diff_vs_baseline']) == {'mAP', 'mAP50'}
    assert siou['diff_vs_baseline']['mAP50']['method'] == 't'
    assert len(siou['diff_vs_baseline']['mAP50']['ci95']) == 2
    assert siou['verdict'] in ('better', 'worse', 'no difference detected')
    assert report['warnings'] and 'fewer than 3 seeds' in report['warnings'][-1]
    # the seed reached the config of each run, and only the variant's loss differs
    dumped = (work_dir / 'siou' / 'seed_1' / 'tiny.py').read_text()
    assert "type='SIoULoss'" in dumped and 'seed=1' in dumped
    assert 'SIoULoss' not in (work_dir / 'ciou' / 'seed_1' / 'tiny.py').read_text()
    assert (work_dir / 'compare.png').read_bytes()[:4] == b'\x89PNG'
    assert 'report.md' in result.stdout
    assert '[siou seed 1] done in' in result.stdout
    # the interrupted run resumed from its epoch-1 checkpoint
    assert '[ciou seed 0] resuming' in result.stdout
    assert '[ciou seed 1] starting' in result.stdout
    log = (killed / 'train.log').read_text()
    assert '--resume' in log and 'resumed' in log.lower()
    assert 'Epoch(train) [1]' not in log and 'Epoch(train) [2]' in log
    # the same command again trains nothing
    sessions = sorted(os.listdir(work_dir / 'ciou' / 'seed_0'))
    again = run_compare(args, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count('already done, skipped') == 4
    assert sorted(os.listdir(work_dir / 'ciou' / 'seed_0')) == sessions


def test_child_env_one_gpu_per_job_threads_per_job_and_ports(monkeypatch):
    from yolo_losses.lab.compare import child_env

    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '3,5')
    assert [child_env(slot, 2)['CUDA_VISIBLE_DEVICES'] for slot in (0, 1)] == [
        '3', '5']
    assert child_env(2, 3)['CUDA_VISIBLE_DEVICES'] == '3'  # more jobs than GPUs
    assert child_env(0, 1)['CUDA_VISIBLE_DEVICES'] == '3,5'  # one job: all GPUs
    # no GPU: the cores are split between the jobs
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '-1')
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.setattr(os, 'cpu_count', lambda: 8)
    assert child_env(1, 4)['OMP_NUM_THREADS'] == '2'
    assert child_env(1, 16)['OMP_NUM_THREADS'] == '1'
    monkeypatch.setenv('OMP_NUM_THREADS', '3')
    assert child_env(1, 4)['OMP_NUM_THREADS'] == '3'  # the user's choice stays
    # under torchrun: run k's processes meet on MASTER_PORT + 1 + k, not in
    # torchrun's own store
    monkeypatch.setenv('MASTER_PORT', '29600')
    monkeypatch.setenv('TORCHELASTIC_USE_AGENT_STORE', 'True')
    env = child_env(0, 1, 'pytorch', index=4)
    assert env['MASTER_PORT'] == '29605'
    assert 'TORCHELASTIC_USE_AGENT_STORE' not in env


def test_changed_options_in_an_existing_work_dir_are_refused(no_plots,
                                                             tiny_config,
                                                             tmp_path):
    lab(tiny_config, tmp_path / 'lab', FakeTrainer(FINALS), seeds=(0,))
    before = (tmp_path / 'lab' / 'report.json').read_text()
    variants = [Variant('base'), Variant('new', ['model.test_cfg.iou_thr=0.5'])]
    trainer = FakeTrainer(FINALS)
    with pytest.raises(ValueError, match=r'new/seed_0 holds a run .*'
                       r'iou_thr=0.6.*use another --work-dir'):
        run_lab(tiny_config, variants, [0], str(tmp_path / 'lab'),
                trainer=trainer)
    assert trainer.calls == []
    assert (tmp_path / 'lab' / 'report.json').read_text() == before


def test_report_before_any_run_ends_is_all_pending(tiny_config, tmp_path):
    from yolo_losses.lab import build_report, render_markdown

    variants = [Variant('a'), Variant('b', ['model.test_cfg.iou_thr=0.6'])]
    specs = plan(tiny_config, variants, [0, 1, 2], str(tmp_path / 'lab'))
    report = build_report(tiny_config, variants, [0, 1, 2], specs)
    b = report['variants'][1]
    assert [r['status'] for r in b['runs']] == ['pending'] * 3
    assert b['runs'][0]['final'] is None and b['runs'][0]['seconds'] is None
    assert b['mean'] == {'mAP': None, 'mAP50': None}
    assert b['diff_vs_baseline'] == {'mAP': None, 'mAP50': None}
    assert b['verdict'] is None
    assert 'pending (no seed finished by both)' in render_markdown(report)


def test_losses_do_not_import_the_lab():
    code = ('import sys; sys.path.insert(0, %r)\n'
            'from yolo_losses import build_loss\n'
            'import torch\n'
            "loss = build_loss(dict(type='YOLOv8Loss', num_classes=3))\n"
            "print(sorted(m for m in sys.modules if m.startswith('yolo_losses.lab')))"
            % REPO)
    done = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == '[]'
