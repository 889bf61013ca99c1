"""Loss lab: compare losses on your own data over several seeds.

``tools/compare.py`` is the command; :func:`run_lab` is what it calls. The
lab sits on top of the training stack (it runs ``tools/train.py``); no loss
imports it.
"""
from __future__ import annotations

import contextlib
import os.path as osp
import signal
import threading
from typing import Optional, Sequence, TextIO

from .compare import (RunSpec, Variant, VariantAction, parse_overrides, plan,
                      run_matrix, run_state, subprocess_trainer)
from .report import build_report, render_markdown, write_report
from .stats import paired_difference, t_interval, t_quantile

__all__ = ['RunSpec', 'Variant', 'VariantAction', 'build_report',
           'paired_difference', 'parse_overrides', 'plan', 'render_markdown',
           'run_lab', 'run_matrix', 'run_state', 'subprocess_trainer',
           't_interval', 't_quantile', 'write_report']


@contextlib.contextmanager
def _stop_on_signals():
    """SIGTERM / SIGINT: kill the training processes (their runs stay
    resumable), then exit; the handlers are restored afterwards."""
    from .compare import STOPPING, stop_children

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame):
        stop_children()
        raise KeyboardInterrupt if signum == signal.SIGINT else SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, handler)
    STOPPING.clear()
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def run_lab(base_config: str, variants: Sequence[Variant],
            seeds: Sequence[int], work_dir: str,
            cfg_options: Sequence[str] = (), jobs: int = 1,
            launcher: str = 'none', trainer=subprocess_trainer,
            stream: Optional[TextIO] = None,
            progress_interval: float = 30.0) -> dict:
    """Train the matrix (skipping finished runs) and write the report.

    The report is written before the first run (all pending), after each
    run that ends, and at the end. Returns the final report dict.
    """
    from .compare import _is_main_rank

    from .compare import check_same_run

    specs = plan(base_config, variants, seeds, work_dir, cfg_options, launcher)
    for spec in specs:  # before the report is rewritten
        check_same_run(spec)
    main = _is_main_rank()
    if main:
        from .compare import replaced_defaults
        import sys
        for variant in variants:
            for warning in replaced_defaults(variant):
                sys.stderr.write(f'warning: {warning}\n')

    def report(*_):
        return write_report(work_dir, base_config, variants, seeds, specs)

    if main:
        report()
    with _stop_on_signals():
        run_matrix(specs, jobs=jobs, trainer=trainer,
                   on_run_end=report if main else None, stream=stream,
                   progress_interval=progress_interval)
    if not main:
        return build_report(base_config, variants, seeds, specs)
    final = report()
    if stream is None:
        import sys
        stream = sys.stdout
    stream.write(f'report: {osp.join(work_dir, "report.md")} '
                 f'(also report.json, compare.png)\n')
    return final
