"""The loss lab's report: ``report.json``, ``report.md``, ``compare.png``.

Everything is rebuilt from the runs' markers (``lab_status.json``), so the
report is the same whichever process or session wrote it.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

from . import stats
from .compare import (LOG_FILE, RunSpec, Variant, read_seconds, read_status,
                      replaced_defaults, run_state)

PRIMARY = 'mAP50'
PRIMARY_KEY = 'coco/bbox_mAP_50'
MIN_SEEDS = 3
TITLES = {'mAP': 'mAP@[.5:.95]', 'mAP50': 'mAP@.5'}


def _run_entry(spec: RunSpec) -> dict:
    marker = read_status(spec.work_dir) or {}
    state = run_state(spec.work_dir)
    status = state if state in ('done', 'failed') else 'pending'
    entry: Dict[str, Any] = dict(
        seed=spec.seed, work_dir=spec.work_dir,
        final=marker.get('final') if status == 'done' else None,
        seconds=marker.get('seconds', read_seconds(spec.work_dir) or None),
        status=status, log=marker.get('log', osp.join(spec.work_dir, LOG_FILE)))
    if status == 'failed':
        entry['error'] = marker.get('error')
    entry['curve'] = marker.get('curve', []) if status == 'done' else []
    return entry


def build_report(base_config: str, variants: Sequence[Variant],
                 seeds: Sequence[int], specs: Sequence[RunSpec]) -> dict:
    """The ``report.json`` dict (schema in docs/loss_lab.md)."""
    by_variant: Dict[str, List[RunSpec]] = {v.name: [] for v in variants}
    for spec in specs:
        by_variant[spec.variant.name].append(spec)
    out_variants = []
    baseline_finals: Dict[str, Dict[int, float]] = {}
    for index, variant in enumerate(variants):
        runs = [_run_entry(s) for s in by_variant[variant.name]]
        done = [r for r in runs if r['status'] == 'done']
        entry: Dict[str, Any] = dict(name=variant.name)
        if variant.config is not None:
            entry['config'] = variant.config
            if variant.args:
                entry['overrides'] = variant.overrides
        else:
            entry['overrides'] = variant.overrides
        entry['runs'] = runs
        finals = {m: {r['seed']: r['final'][m] for r in done} for m in TITLES}
        entry['mean'], entry['std'] = {}, {}
        for metric, values in finals.items():
            entry['mean'][metric], entry['std'][metric] = stats.summarise(
                list(values.values()))
        seconds = [r['seconds'] for r in done if r['seconds'] is not None]
        entry['mean_seconds'] = stats.mean(seconds) if seconds else None
        if index == 0:
            baseline_finals = finals
            entry['diff_vs_baseline'] = None
            entry['verdict'] = None  # the baseline itself
        else:
            entry['diff_vs_baseline'] = {
                m: stats.paired_difference(finals[m], baseline_finals[m])
                for m in TITLES}
            primary = entry['diff_vs_baseline'][PRIMARY]
            # no seed finished by both yet: nothing to judge
            entry['verdict'] = (stats.verdict(primary['ci95']) if primary
                                else None)
        out_variants.append(entry)
    warnings = [w for v in variants for w in replaced_defaults(v)]
    if len(seeds) < MIN_SEEDS:
        warnings.append(f'only {len(seeds)} seed(s): fewer than {MIN_SEEDS} seeds '
                        'give intervals too wide (or none) to detect anything')
    return {'base_config': base_config, 'seeds': [int(s) for s in seeds],
            'metric': PRIMARY_KEY, 'variants': out_variants,
            'warnings': warnings}


def _fmt(value: Optional[float], digits: int = 4) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def _fmt_signed(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:+.4f}'


def _describe(variant: dict) -> str:
    parts = []
    if 'config' in variant:
        parts.append(f'config `{variant["config"]}`')
    for key, value in (variant.get('overrides') or {}).items():
        parts.append(f'`{key}={value}`')
    return ', '.join(parts) or 'the base config'


def render_markdown(report: dict) -> str:
    """``report.md``: per-seed table, summary, paired differences, verdicts."""
    variants = report['variants']
    seeds = report['seeds']
    base = variants[0]['name'] if variants else '-'
    lines = ['# Loss lab report', '',
             f'Base config `{report["base_config"]}`, seeds {seeds}, '
             f'baseline **{base}**. Values are the final epoch\'s validation '
             'mAP (COCO, pycocotools); the verdict is on mAP@.5.', '']
    if report.get('warnings'):
        lines += ['**Warnings**', '']
        lines += [f'- {warning}' for warning in report['warnings']]
        lines.append('')
    lines += ['## Variants', '']
    for variant in variants:
        lines.append(f'- **{variant["name"]}**: {_describe(variant)}')
    lines += ['', '## Per seed (final epoch)', '',
              '| variant | seed | mAP@[.5:.95] | mAP@.5 | seconds | status |',
              '| --- | --- | --- | --- | --- | --- |']
    for variant in variants:
        for run in variant['runs']:
            final = run['final'] or {}
            status = run['status']
            if status == 'failed':
                status = f'failed (log `{run["log"]}`)'
            lines.append(f'| {variant["name"]} | {run["seed"]} | '
                         f'{_fmt(final.get("mAP"))} | {_fmt(final.get("mAP50"))} | '
                         f'{_fmt(run["seconds"], 0)} | {status} |')
    lines += ['', '## Summary (mean ± sample sd over finished seeds)', '',
              '| variant | runs done | mAP@[.5:.95] | mAP@.5 | seconds/run | '
              'Δ mAP@.5 vs baseline [95 % CI] | Δ mAP@[.5:.95] [95 % CI] | verdict |',
              '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for variant in variants:
        done = sum(r['status'] == 'done' for r in variant['runs'])
        cells = []
        for metric in ('mAP', 'mAP50'):
            m, sd = variant['mean'][metric], variant['std'][metric]
            cells.append(f'{_fmt(m)} ± {_fmt(sd)}' if sd is not None else _fmt(m))
        diffs = []
        for metric in ('mAP50', 'mAP'):
            diff = (variant['diff_vs_baseline'] or {}).get(metric)
            if diff is None:
                diffs.append('-')
                continue
            ci = diff['ci95']
            text = _fmt_signed(diff['mean'])
            text += (f' [{_fmt_signed(ci[0])}, {_fmt_signed(ci[1])}]' if ci
                     else ' (one seed: no interval)')
            if diff.get('bootstrap_ci95'):
                lo, hi = diff['bootstrap_ci95']
                text += f'; bootstrap [{_fmt_signed(lo)}, {_fmt_signed(hi)}]'
            diffs.append(text)
        if variant['diff_vs_baseline'] is None:
            verdict = 'baseline'
        elif variant['verdict'] is None:
            verdict = 'pending (no seed finished by both)'
        elif variant['verdict'] == stats.NO_DIFFERENCE:
            verdict = 'no difference detected at this budget'
        else:
            verdict = f'**{variant["verdict"]}**'
        lines.append(f'| {variant["name"]} | {done}/{len(variant["runs"])} | '
                     f'{cells[0]} | {cells[1]} | '
                     f'{_fmt(variant["mean_seconds"], 0)} | {diffs[0]} | '
                     f'{diffs[1]} | {verdict} |')
    lines += ['', '## Method', '',
              'Each variant is compared with the baseline seed by seed (the '
              'same seed gives both runs the same data order, augmentation and '
              'initialisation draws): Δ is the mean of the per-seed differences '
              'variant − baseline over the seeds both finished, and the 95 % '
              'interval is Student\'s t on those differences (mean ± '
              't₀.₉₇₅,ₙ₋₁ · sd / √n). With 5 or more shared seeds a percentile '
              f'bootstrap interval ({stats.BOOTSTRAP_RESAMPLES} resamples, seed '
              f'{stats.BOOTSTRAP_SEED}) is shown beside it as a check; the '
              'verdict always uses the t interval: "better" / "worse" when it '
              'lies above / below 0, otherwise "no difference detected at this '
              'budget". A longer schedule, more data or more seeds may still '
              'find a difference that this budget does not.', '']
    return '\n'.join(lines)


def plot_report(report: dict, out_file: str) -> str:
    """``compare.png``: mean val mAP@.5 per epoch with a min-max band over
    seeds, and a dot plot of each seed's final mAP@.5 and mAP@[.5:.95]."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    variants = report['variants']
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8),
                             gridspec_kw=dict(width_ratios=[1.5, 1, 1]))
    curve_axis = axes[0]
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for index, variant in enumerate(variants):
        color = colors[index % len(colors)]
        by_epoch: Dict[int, List[float]] = {}
        for run in variant['runs']:
            for row in run.get('curve', []):
                if 'mAP50' in row:
                    by_epoch.setdefault(row['epoch'], []).append(row['mAP50'])
        if not by_epoch:
            continue
        epochs = sorted(by_epoch)
        values = [by_epoch[e] for e in epochs]
        curve_axis.plot(epochs, [sum(v) / len(v) for v in values], marker='o',
                        markersize=3, color=color, label=variant['name'])
        curve_axis.fill_between(epochs, [min(v) for v in values],
                                [max(v) for v in values], color=color, alpha=0.2)
    curve_axis.set_title('val mAP@.5: mean over seeds, band min-max')
    curve_axis.set_xlabel('epoch')
    curve_axis.grid(alpha=0.3)
    if curve_axis.get_legend_handles_labels()[0]:
        curve_axis.legend(fontsize=8)
    for axis, metric in zip(axes[1:], ('mAP50', 'mAP')):
        names = [v['name'] for v in variants]
        for index, variant in enumerate(variants):
            color = colors[index % len(colors)]
            points = [r['final'][metric] for r in variant['runs']
                      if r['status'] == 'done']
            n = len(points)
            xs = [index + (k - (n - 1) / 2) * 0.08 for k in range(n)]
            axis.scatter(xs, points, color=color, s=22, zorder=3)
            if points:
                m = sum(points) / n
                axis.hlines(m, index - 0.25, index + 0.25, color=color,
                            linewidth=1.5)
        axis.set_xticks(range(len(names)))
        axis.set_xticklabels(names, rotation=20)
        axis.set_xlim(-0.6, max(len(names), 1) - 0.4)
        axis.set_title(f'final {TITLES[metric]} per seed (bar: mean)')
        axis.grid(alpha=0.3, axis='y')
    # fixed margins: tight_layout costs more than the drawing itself
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.2, top=0.92, wspace=0.25)
    fig.savefig(out_file, dpi=80)
    plt.close(fig)
    return out_file


def write_report(work_dir: str, base_config: str, variants: Sequence[Variant],
                 seeds: Sequence[int], specs: Sequence[RunSpec]) -> dict:
    """(Re)write ``report.json``, ``report.md`` and ``compare.png`` (once
    a run is done) in ``work_dir``; returns the report dict."""
    os.makedirs(work_dir, exist_ok=True)
    report = build_report(base_config, variants, seeds, specs)
    for name, text in (('report.json', json.dumps(report, indent=1)),
                       ('report.md', render_markdown(report))):
        path = osp.join(work_dir, name)
        tmp = f'{path}.tmp{os.getpid()}'
        with open(tmp, 'w', encoding='utf-8') as handle:
            handle.write(text + '\n')
        os.replace(tmp, path)
    if any(r['status'] == 'done' for v in report['variants'] for r in v['runs']):
        plot_report(report, osp.join(work_dir, 'compare.png'))
    return report
