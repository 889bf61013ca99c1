"""Smoke test of ``benchmarks/bench_basic_losses.py``: it runs at a tiny size
and prints one timed row per loss and implementation (no timing assertions)."""
import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / 'benchmarks' / 'bench_basic_losses.py'
LOSSES = ['CrossEntropyLoss(use_sigmoid)', 'FocalLoss', 'VarifocalLoss', 'QualityFocalLoss',
          'IoULoss', 'GIoULoss', 'DIoULoss', 'CIoULoss', "CIoULoss(style='yolo')",
          'EIoULoss', 'SIoULoss']
NUMBER = r'\d+\.\d+'


def test_bench_basic_losses_tiny():
    env = dict(os.environ, OMP_NUM_THREADS='1')
    done = subprocess.run([sys.executable, str(SCRIPT), '--size', 'tiny', '--repeat', '1'],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    header = re.search(r'^loss\s+impl\s+shape\s+dtype\s+ms fwd\+bwd\s+ratio to ours', out, re.M)
    assert header, out
    for loss in LOSSES:
        name = re.escape(loss)
        shape = r'2x64x8' if 'IoU' not in loss else r'256x4'
        # ours: the time and a ratio of exactly 1 to itself
        ours = rf'^{name}\s+ours\s+{shape}\s+float32\s+{NUMBER}\s+1\.00\s*$'
        assert re.search(ours, out, re.M), f'no timed "ours" row for {loss}:\n{out}'
        assert re.search(rf'^{name}\s+ours\+validate\s+{shape}\s+float32\s+{NUMBER}\s+{NUMBER}',
                         out, re.M), f'no "ours+validate" row for {loss}:\n{out}'
        eager = rf'^{name}\s+eager\s+{shape}\s+float32\s+{NUMBER}\s+{NUMBER}'
        assert re.search(eager, out, re.M), f'no "eager" row for {loss}:\n{out}'
    try:
        import torchvision.ops  # noqa: F401
    except Exception:
        assert 'skipped: torchvision not importable' in out
    else:
        assert re.search(r'^GIoULoss\s+torchvision\s', out, re.M)
    # the plain formulas written in the script give our values
    assert 'all values agree with ours within 0.001 relative' in out, out
    # the modern box losses, each timed next to CIoU (ratio 1 for the baseline)
    assert re.search(r"^CIoULoss\(style='yolo'\)\s+256x4\s+float32\s+" + NUMBER + r'\s+'
                     + NUMBER + r'\s+1\.00\s*$', out, re.M), out
    for loss in ('WIoULoss(v3)', 'MPDIoULoss', 'InnerIoULoss(CIoU)', 'FocalerIoULoss(CIoU)',
                 'ShapeIoULoss', 'NWDLoss', 'AlphaIoULoss(ciou)', 'EfficientIoULoss',
                 'PIoULoss(v2)'):
        assert re.search(rf'^{re.escape(loss)}\s+256x4\s+float32\s+{NUMBER}\s+{NUMBER}'
                         rf'\s+{NUMBER}\s*$', out, re.M), f'no modern row for {loss}:\n{out}'


def test_bench_speed_runs_both_parts_quick():
    """``bench_speed.py`` is the one command for every speed case: both
    tables come out of one run (tiny sizes here; peers skipped or agreeing)."""
    script = SCRIPT.parent / 'bench_speed.py'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    done = subprocess.run([sys.executable, str(script), '--quick', '--device', 'cpu'],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert '== Composite losses against their peers ==' in out
    assert '== Element-wise sigmoid losses against the memory roofline ==' in out
    for label in ('yolo_losses YOLOv5Loss', 'yolo_losses YOLOv8Loss'):
        assert label in out, out
    assert re.search(r'^FocalLoss\s+plain\s', out, re.M), out
    assert re.search(r'^\S+\s+copy\s', out, re.M), out
