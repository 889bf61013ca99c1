"""Plots of training curves (``curves.json`` written by ``CurvesHook``)."""
from __future__ import annotations

import json
import os.path as osp
from typing import Dict, List, Optional, Sequence


def read_curves(work_dir: str) -> Dict[str, List[dict]]:
    """The ``curves.json`` of a work dir: ``dict(train=[...], val=[...])``."""
    path = osp.join(work_dir, 'curves.json')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path!r} does not exist: is {work_dir!r} the work dir of a '
            'tools/train.py run?')
    try:
        with open(path, encoding='utf-8') as handle:
            curves = json.load(handle)
    except json.JSONDecodeError as err:
        raise ValueError(f'{path!r} is not valid JSON: {err}') from None
    if not isinstance(curves, dict) or not {'train', 'val'} <= set(curves):
        raise ValueError(f'{path!r} lacks the "train" and "val" lists')
    return curves


def plot_runs(work_dirs: Sequence[str], out_file: str,
              labels: Optional[Sequence[str]] = None) -> str:
    """Draw each loss component and each val metric against the epoch.

    One panel per quantity; several work dirs are overlaid, one line each
    (labelled by ``labels`` or the work dir's name), for comparing losses.
    Returns ``out_file``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    if not work_dirs:
        raise ValueError('plot_runs needs at least one work dir')
    if labels is not None and len(labels) != len(work_dirs):
        raise ValueError(f'{len(labels)} labels for {len(work_dirs)} work dirs')
    runs = [read_curves(d) for d in work_dirs]
    names = list(labels) if labels is not None else [
        osp.basename(osp.normpath(d)) for d in work_dirs]
    keys: List[tuple] = []
    for curves in runs:
        for part in ('train', 'val'):
            for row in curves[part]:
                for key in row:
                    if key != 'epoch' and (part, key) not in keys:
                        keys.append((part, key))
    if not keys:
        keys = [('train', 'loss')]
    columns = min(3, len(keys))
    rows = -(-len(keys) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.2 * rows),
                             squeeze=False)
    for axis, (part, key) in zip(axes.flat, keys):
        for curves, name in zip(runs, names):
            points = [(r['epoch'], r[key]) for r in curves[part] if key in r]
            if points:
                xs, ys = zip(*points)
                axis.plot(xs, ys, marker='o', markersize=3, label=name)
        axis.set_title(f'{part}: {key}')
        axis.set_xlabel('epoch')
        axis.grid(alpha=0.3)
        if len(runs) > 1:
            axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(keys):]:
        axis.axis('off')
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return out_file
