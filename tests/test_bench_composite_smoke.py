"""Smoke run of ``benchmarks/bench_composite_losses.py`` at its tiniest size.

In the project venv the peers (ultralytics, yolov5) are absent, so the run
must say it skipped them and still time our losses; where they are
installed, their rows must agree with ours on the same inputs.
"""
from __future__ import annotations

import importlib.util
import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     'benchmarks', 'bench_composite_losses.py')


@pytest.fixture(scope='module')
def bench():
    spec = importlib.util.spec_from_file_location('bench_composite_losses', BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module      # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_quick_run_times_ours_and_reports_peers(bench, capsys, tmp_path):
    markdown = tmp_path / 'quick.md'
    rows = bench.main(['--quick', '--warmup', '0', '--repeats', '1',
                       '--v3-styles', 'keras', '--markdown', str(markdown)])
    out = capsys.readouterr().out

    ours = [r for r in rows if r.label.startswith('yolo_losses ')]
    assert {r.label for r in ours} == {'yolo_losses YOLOv3Loss[keras]',
                                       'yolo_losses YOLOv5Loss',
                                       'yolo_losses YOLOv8Loss'}
    for row in ours:
        assert row.error == '' and row.ms is not None and row.ms > 0, row
        assert row.syncs == 'n/a'                       # CPU
        assert int(row.ops) > 20                         # a loss is many operators
    # Validation changes the cost, never the numbers.
    for label in {r.label for r in ours}:
        on, off = (next(r for r in ours if r.label == label and r.validate == v)
                   for v in ('on', 'off'))
        assert on.components == off.components, label

    for impl, (_, module) in bench.PEERS.items():
        peer = [r for r in rows if r.family == bench.FAMILY[impl] and r.validate == '-']
        if peer:
            assert peer[0].error == '' and float(peer[0].agrees) < 1e-4, peer[0]
        else:
            assert f'{impl}: skipped, {module} is not importable' in out

    assert 'implementation' in out and 'torch ' in out
    text = markdown.read_text()
    assert text.count('| B=2 64x64 C=4 boxes/img=2 |') == len(rows)


def test_compile_option_adds_compiled_rows_with_validation_off(bench):
    # Building the runners compiles nothing (that happens on the first call).
    case = bench.Case(batch=2, img=64, num_classes=4, boxes=2)
    runners = bench.runners_for(['ours-v5', 'ours-v8'], ['keras'], ['on', 'off'], case,
                                'cpu', [], compiled=True)
    assert [(r.label, r.validate) for r in runners] == [
        ('yolo_losses YOLOv5Loss', 'on'), ('yolo_losses YOLOv5Loss', 'off'),
        ('yolo_losses YOLOv5Loss torch.compile', 'off'),
        ('yolo_losses YOLOv8Loss', 'on'), ('yolo_losses YOLOv8Loss', 'off'),
        ('yolo_losses YOLOv8Loss torch.compile', 'off')]
    with pytest.raises(SystemExit):
        bench.parse_args(['--compile', '--warmup', '0'])
