"""Smoke run of ``benchmarks/bench_e2e_loss.py`` at its tiniest size.

In the project venv ultralytics is absent: the run must say it skipped it
and still time ours; where ultralytics is installed, its total must agree
with ours on the same inputs.
"""
from __future__ import annotations

import importlib.util
import os
import sys

import pytest
import torch

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          'benchmarks')


@pytest.fixture(scope='module')
def bench():
    sys.path.insert(0, BENCHMARKS)       # it imports bench_composite_losses
    spec = importlib.util.spec_from_file_location(
        'bench_e2e_loss', os.path.join(BENCHMARKS, 'bench_e2e_loss.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
        sys.modules.pop('bench_composite_losses', None)
        sys.path.remove(BENCHMARKS)


def test_quick_run_times_ours_and_reports_the_peer(bench, capsys, tmp_path):
    markdown = tmp_path / 'quick.md'
    threads = torch.get_num_threads()
    rows = bench.main(['--quick', '--warmup', '0', '--repeats', '1', '--cpu-time',
                       '--markdown', str(markdown)])
    assert torch.get_num_threads() == threads         # restored after --cpu-time
    out = capsys.readouterr().out
    ours = [r for r in rows if r.label.startswith('yolo_losses ')]
    assert {(r.label, r.validate) for r in ours} == {
        ('yolo_losses E2ELoss[yolo26]', 'on'), ('yolo_losses E2ELoss[yolo26]', 'off')}
    for row in ours:
        assert row.error == '' and row.ms is not None and row.ms > 0, row
    on, off = (next(r for r in ours if r.validate == v) for v in ('on', 'off'))
    assert on.components == off.components           # validation changes no number
    assert bench.parse_args(['--v10']).v10
    with pytest.raises(SystemExit):
        bench.parse_args(['--cpu-time', '--device', 'cuda'])
    peers = [r for r in rows if r.label.startswith('ultralytics')]
    if peers:
        for peer in peers:
            assert peer.error == '' and float(peer.agrees) < 1e-5, peer
    else:
        assert 'ultralytics skipped, not importable' in out
    assert markdown.read_text().count('| B=2 64x64 C=4 boxes/img=2 |') == len(rows)
