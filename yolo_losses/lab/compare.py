"""The loss lab's matrix: variants x seeds, each a ``tools/train.py`` run.

Each (variant, seed) pair is one training in ``WORK_DIR/NAME/seed_S/``, run
as a subprocess of ``tools/train.py`` (the very command a user types), with

    --cfg-options <common K=V ...> <variant K=V ...> randomness.seed=S

so nothing but the variant's overrides and the seed differs between runs.
The state of a run lives in its directory:

- ``lab_status.json`` written by the lab after ``tools/train.py`` exited 0
  (so after its final checkpoint) and the final validation metrics were
  read: ``status`` ``done``, the finals, the per-epoch val curve, seconds.
  A done run is never retrained.
- ``lab_status.json`` with ``status`` ``failed``: the exit code and the log
  path; running the command again retries it (resuming if it had saved a
  checkpoint).
- no marker but a ``last_checkpoint`` (mmengine's pointer to its latest
  checkpoint): an interrupted run; it resumes with ``--resume``.
- ``train.log``: everything the training printed, every session appended.
- ``lab_time.json``: wall seconds of the training processes so far, summed
  over sessions (the report's ``seconds``).

Nothing here schedules across machines: ``--jobs N`` runs N local
processes (one per GPU where there are several), and a cluster runs the
whole command under torchrun / slurm with ``--launcher``.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

STATUS_FILE = 'lab_status.json'
RUN_FILE = 'lab_run.json'
TIME_FILE = 'lab_time.json'
LOG_FILE = 'train.log'
METRIC_KEYS = {'mAP': 'coco/bbox_mAP', 'mAP50': 'coco/bbox_mAP_50'}
_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')
_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN_SCRIPT = osp.join(_REPO, 'tools', 'train.py')


def parse_overrides(items: Sequence[str], what: str = 'override'
                    ) -> Dict[str, Any]:
    """``K=V`` strings -> dict, values parsed exactly as mmengine's
    ``DictAction`` (``--cfg-options``) parses them (ints, floats, bools,
    None, lists/tuples, strings)."""
    from mmengine.config import DictAction

    for item in items:
        if not isinstance(item, str) or '=' not in item or item.startswith('='):
            raise ValueError(f'{what} must look like KEY=VALUE, got {item!r}')
    namespace = argparse.Namespace()
    DictAction(option_strings=[], dest='options')(None, namespace, list(items))
    return namespace.options


@dataclass
class Variant:
    """One arm of the comparison: ``overrides`` on the base config, or a
    whole ``config`` file (with the common options on top)."""
    name: str
    args: List[str] = field(default_factory=list)  # K=V as given
    config: Optional[str] = None
    #: (created parent dict, its keys) found by :func:`plan`
    created: List[tuple] = field(default_factory=list)

    @property
    def overrides(self) -> Dict[str, Any]:
        return parse_overrides(self.args, f'--variant {self.name}')


@dataclass
class RunSpec:
    """One (variant, seed) training."""
    variant: Variant
    seed: int
    config: str
    work_dir: str
    cfg_options: List[str]  # K=V strings for tools/train.py, in order
    max_epochs: Optional[int] = None
    launcher: str = 'none'

    @property
    def label(self) -> str:
        return f'{self.variant.name} seed {self.seed}'


def check_variants(variants: Sequence[Variant], seeds: Sequence[int]) -> None:
    """Clear errors for empty, duplicate or unusable names and seeds."""
    if not variants:
        raise ValueError('give at least one --variant or --variant-config '
                         '(the first one is the baseline)')
    names = [v.name for v in variants]
    for name in names:
        if not _NAME_RE.match(name):
            raise ValueError(f'variant name {name!r} must be letters, digits, '
                             '".", "_" or "-" (it names a directory)')
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f'variant names must be unique, got {duplicates} twice')
    if not seeds:
        raise ValueError('--seeds needs at least one seed')
    if len(set(seeds)) != len(seeds):
        raise ValueError(f'--seeds must be distinct, got {list(seeds)}')
    for variant in variants:
        if variant.config is not None and not osp.isfile(variant.config):
            raise FileNotFoundError(f'--variant-config {variant.name}: config '
                                    f'{variant.config!r} does not exist')
        if 'randomness.seed' in variant.overrides:
            raise ValueError(f'--variant {variant.name} sets randomness.seed; '
                             'the lab sets it from --seeds')


def plan(base_config: str, variants: Sequence[Variant], seeds: Sequence[int],
         work_dir: str, cfg_options: Sequence[str] = (),
         launcher: str = 'none', load: bool = True) -> List[RunSpec]:
    """The runs of the matrix, variant by variant, seed by seed.

    With ``load`` each variant's config is loaded and merged once here, so a
    missing file or a misspelt top-level key fails before anything trains.
    """
    if not osp.isfile(base_config):
        raise FileNotFoundError(f'base config {base_config!r} does not exist')
    check_variants(variants, seeds)
    common = list(cfg_options)
    if 'randomness.seed' in parse_overrides(common, '--cfg-options'):
        raise ValueError('--cfg-options sets randomness.seed; the lab sets it '
                         'from --seeds')
    specs = []
    for variant in variants:
        config = variant.config or base_config
        max_epochs = None
        if load:
            from mmengine.config import Config

            from ..engine.runner import load_config
            options = parse_overrides(common + variant.args)
            original = Config.fromfile(config)
            parents = created_keys(original, list(variant.overrides))
            variant.created = [
                (p, sorted(k[len(p) + 1:] for k in variant.overrides
                           if k.startswith(p + '.'))) for p in parents]
            cfg = load_config(config, options)
            max_epochs = cfg.get('train_cfg', {}).get('max_epochs')
        for seed in seeds:
            specs.append(RunSpec(
                variant=variant, seed=int(seed), config=config,
                work_dir=osp.join(work_dir, variant.name, f'seed_{seed}'),
                cfg_options=common + list(variant.args)
                + [f'randomness.seed={int(seed)}'],
                max_epochs=max_epochs, launcher=launcher))
    return specs


# --- state of one run --------------------------------------------------------

def _write_json(path: str, data: dict) -> None:
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w', encoding='utf-8') as handle:
        json.dump(data, handle, indent=1)
    os.replace(tmp, path)  # atomic: a kill never leaves half a marker


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path, encoding='utf-8') as handle:
            return json.load(handle)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def read_status(work_dir: str) -> Optional[dict]:
    """The lab's marker of a run (None when it has none)."""
    return _read_json(osp.join(work_dir, STATUS_FILE))


def run_state(work_dir: str) -> str:
    """'done', 'failed', 'interrupted' (a checkpoint, no marker) or 'new'."""
    status = read_status(work_dir)
    if status is not None and status.get('status') in ('done', 'failed'):
        return status['status']
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        return 'interrupted'
    return 'new'


def has_checkpoint(work_dir: str) -> bool:
    return osp.isfile(osp.join(work_dir, 'last_checkpoint'))


def run_identity(spec: RunSpec) -> dict:
    """What makes a run this run: its config file and options."""
    return dict(config=osp.abspath(spec.config),
                cfg_options=list(spec.cfg_options))


def check_same_run(spec: RunSpec) -> None:
    """``ValueError`` when ``spec.work_dir`` holds a run started with
    another config or other options: skipping or resuming it would mix
    budgets in one report."""
    recorded = _read_json(osp.join(spec.work_dir, RUN_FILE))
    if recorded is not None and recorded != run_identity(spec):
        raise ValueError(
            f'{spec.work_dir} holds a run of {recorded["config"]} with '
            f'--cfg-options {" ".join(recorded["cfg_options"])}, not of '
            f'{osp.abspath(spec.config)} with {" ".join(spec.cfg_options)}; '
            'use another --work-dir (or delete that run) to change the '
            'variants or the budget')


def read_seconds(work_dir: str) -> float:
    data = _read_json(osp.join(work_dir, TIME_FILE)) or {}
    return float(data.get('seconds', 0.0))


def read_val_curve(work_dir: str) -> List[dict]:
    """Per-epoch validation metrics of a run from mmengine's scalars.

    Reads every ``<timestamp>/vis_data/scalars.json`` of the work dir (one
    per session of a resumed run), keeps the rows that hold
    ``coco/bbox_mAP_50`` and returns ``[dict(epoch, mAP, mAP50)]`` sorted
    by epoch, a later session's row replacing an earlier one's.
    """
    rows: Dict[int, dict] = {}
    if not osp.isdir(work_dir):
        return []
    sessions = sorted(d for d in os.listdir(work_dir)
                      if osp.isfile(osp.join(work_dir, d, 'vis_data',
                                             'scalars.json')))
    for session in sessions:
        path = osp.join(work_dir, session, 'vis_data', 'scalars.json')
        with open(path, encoding='utf-8') as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if METRIC_KEYS['mAP50'] not in row or 'step' not in row:
                    continue
                epoch = int(row['step'])
                rows[epoch] = dict(
                    epoch=epoch,
                    **{short: float(row[key]) for short, key in METRIC_KEYS.items()
                       if key in row})
    return [rows[e] for e in sorted(rows)]


# --- training ----------------------------------------------------------------

#: ``trainer(spec, resume, on_line, env) -> exit code``
Trainer = Callable[[RunSpec, bool, Callable[[str], None], Dict[str, str]], int]


def train_command(spec: RunSpec, resume: bool) -> List[str]:
    """The ``tools/train.py`` command line of a run."""
    cmd = [sys.executable, TRAIN_SCRIPT, spec.config, '--work-dir',
           spec.work_dir, '--cfg-options', *spec.cfg_options]
    if resume:
        cmd.append('--resume')
    if spec.launcher != 'none':
        cmd += ['--launcher', spec.launcher]
    return cmd


# training processes alive now, and whether the lab is being stopped (a
# run cut short then stays "interrupted", to be resumed, not "failed")
_LIVE: set = set()
_LIVE_LOCK = threading.Lock()
STOPPING = threading.Event()


def stop_children() -> None:
    """Mark the lab as stopping and kill every training process it
    started (they resume from their last checkpoint next time)."""
    STOPPING.set()
    with _LIVE_LOCK:
        for process in list(_LIVE):
            if process.poll() is None:
                process.kill()


def subprocess_trainer(spec: RunSpec, resume: bool,
                       on_line: Callable[[str], None],
                       env: Dict[str, str]) -> int:
    """Run ``tools/train.py`` for ``spec``; every output line goes to
    ``on_line``. Returns its exit code."""
    with _LIVE_LOCK:
        if STOPPING.is_set():
            raise RuntimeError('the lab is stopping')
        process = subprocess.Popen(train_command(spec, resume), env=env,
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True,
                                   bufsize=1, errors='replace')
        _LIVE.add(process)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            on_line(line)
        return process.wait()
    finally:
        if process.poll() is None:  # the lab itself was interrupted
            process.kill()
            process.wait()
        with _LIVE_LOCK:
            _LIVE.discard(process)


_TRAIN_LINE = re.compile(r'Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]')
_ETA = re.compile(r'eta: ([0-9:]+(?: days?, [0-9:]+)?)')


class Progress:
    """Thread-safe console lines: one per run at each new epoch (variant,
    seed, epoch, ETA, at most every ``interval`` s) and one when it ends."""

    def __init__(self, total: int, stream: Optional[TextIO] = None,
                 interval: float = 30.0) -> None:
        self.total = total
        self.stream = stream or sys.stdout
        self.interval = interval
        self.finished = 0
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        with self._lock:
            self.stream.write(text + '\n')
            self.stream.flush()

    def run_line(self, spec: RunSpec, epoch: int, it: int, iters: int,
                 eta: str) -> None:
        epochs = f'{epoch}/{spec.max_epochs}' if spec.max_epochs else f'{epoch}'
        self.write(f'[{spec.label}] epoch {epochs} iter {it}/{iters} '
                   f'eta {eta or "?"}')

    def end_line(self, spec: RunSpec, status: dict) -> None:
        with self._lock:
            self.finished += 1
            count = f'({self.finished}/{self.total} runs ended)'
        if status['status'] == 'done':
            final = status['final']
            self.write(f'[{spec.label}] done in {status["seconds"]:.0f} s: '
                       f'mAP {final["mAP"]:.4f} mAP50 {final["mAP50"]:.4f} '
                       f'{count}')
        else:
            self.write(f'[{spec.label}] FAILED ({status.get("error")}); log '
                       f'{status.get("log")} {count}')


def _is_main_rank() -> bool:
    return os.environ.get('RANK', '0') == '0'


def execute_run(spec: RunSpec, trainer: Trainer, progress: Progress,
                env: Dict[str, str]) -> dict:
    """Train (or resume) one run to its end and write its marker.

    Returns the marker. Never raises for a failed training: the marker says
    ``failed`` with the log path and the error.
    """
    os.makedirs(spec.work_dir, exist_ok=True)
    main = _is_main_rank()
    # under a launcher every rank trains; rank 0 keeps the marker and train.log
    log_path = osp.join(spec.work_dir, LOG_FILE if main else
                        f'train.rank{os.environ.get("RANK")}.log')
    resume = has_checkpoint(spec.work_dir)
    status_path = osp.join(spec.work_dir, STATUS_FILE)
    if main:
        if osp.exists(status_path):  # a failed run being retried
            os.remove(status_path)
        _write_json(osp.join(spec.work_dir, RUN_FILE), run_identity(spec))
    seconds_before = read_seconds(spec.work_dir)
    start = time.monotonic()
    state = dict(epoch=0, printed=0.0)

    def save_seconds() -> float:
        total = seconds_before + time.monotonic() - start
        if main:
            _write_json(osp.join(spec.work_dir, TIME_FILE),
                        dict(seconds=round(total, 3)))
        return total

    with open(log_path, 'a', encoding='utf-8') as log:
        log.write(f'# loss lab: {"resume" if resume else "start"} '
                  f'{time.strftime("%Y-%m-%d %H:%M:%S")}: '
                  f'{" ".join(train_command(spec, resume))}\n')
        log.flush()

        def on_line(line: str) -> None:
            log.write(line)
            log.flush()
            match = _TRAIN_LINE.search(line)
            if not match or not main:
                return
            epoch, it, iters = (int(g) for g in match.groups())
            now = time.monotonic()
            if epoch != state['epoch'] or now - state['printed'] >= progress.interval:
                eta = _ETA.search(line)
                progress.run_line(spec, epoch, it, iters,
                                  eta.group(1) if eta else '')
                state.update(epoch=epoch, printed=now)
                save_seconds()

        if main:
            progress.write(f'[{spec.label}] {"resuming" if resume else "starting"}'
                           f' in {spec.work_dir}')
        error = None
        try:
            code = trainer(spec, resume, on_line, env)
            if code != 0:
                error = f'tools/train.py exited with {code}'
        except Exception as err:  # a broken trainer must not stop the matrix
            error = f'{type(err).__name__}: {err}'
        seconds = save_seconds()
        if STOPPING.is_set():
            log.write('# loss lab: stopped; the next run of the command '
                      'resumes this one\n')
            return dict(status='interrupted', log=log_path, seconds=seconds)
        if error:
            log.write(f'# loss lab: failed: {error}\n')

    status: Dict[str, Any] = dict(log=log_path, seconds=round(seconds, 3))
    if error is None:
        curve = read_val_curve(spec.work_dir)
        if not curve or 'mAP' not in curve[-1]:
            error = (f'no coco/bbox_mAP_50 validation in {spec.work_dir}/*/'
                     'vis_data/scalars.json')
        elif spec.max_epochs and curve[-1]['epoch'] != spec.max_epochs:
            error = (f'last validation at epoch {curve[-1]["epoch"]}, not at the '
                     f'final epoch {spec.max_epochs} (set train_cfg.val_interval '
                     'so that the last epoch is validated)')
        else:
            status.update(status='done', final=dict(mAP=curve[-1]['mAP'],
                                                    mAP50=curve[-1]['mAP50']),
                          curve=curve)
    if error is not None:
        status.update(status='failed', error=error)
    if main:
        _write_json(status_path, status)
        progress.end_line(spec, status)
    return status


def child_env(slot: int, jobs: int, launcher: str = 'none',
              index: int = 0) -> Dict[str, str]:
    """Environment of the training process in worker ``slot``.

    With several jobs: on a machine with several visible GPUs, job slot i
    gets GPU i mod count (``CUDA_VISIBLE_DEVICES``); on a CPU each job gets
    cores / jobs OpenMP threads unless ``OMP_NUM_THREADS`` is set.

    Under a launcher (this command started by torchrun on every process)
    the training processes of run ``index`` form their own process group
    on ``MASTER_PORT + 1 + index``, the same on every rank, so that runs
    one after another never meet the previous group's (or torchrun's own)
    store.
    """
    env = dict(os.environ)
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    if launcher != 'none':
        env['MASTER_PORT'] = str(int(env.get('MASTER_PORT', '29500')) + 1 + index)
        env.pop('TORCHELASTIC_USE_AGENT_STORE', None)
        return env
    if jobs <= 1:
        return env
    visible = env.get('CUDA_VISIBLE_DEVICES')
    if visible is not None and visible.strip() not in ('', '-1'):
        gpus = [g.strip() for g in visible.split(',') if g.strip()]
    else:
        try:
            import torch
            gpus = [str(i) for i in range(torch.cuda.device_count())]
        except Exception:  # no usable CUDA: the CPU path
            gpus = []
    if gpus:
        env['CUDA_VISIBLE_DEVICES'] = gpus[slot % len(gpus)]
    elif 'OMP_NUM_THREADS' not in os.environ:
        env['OMP_NUM_THREADS'] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


def run_matrix(specs: Sequence[RunSpec], jobs: int = 1,
               trainer: Trainer = subprocess_trainer,
               on_run_end: Optional[Callable[[RunSpec, dict], None]] = None,
               stream: Optional[TextIO] = None,
               progress_interval: float = 30.0) -> Dict[str, dict]:
    """Train every run of ``specs`` that is not done yet.

    Done runs are skipped; interrupted (and failed) ones resume from their
    last checkpoint; a failed run never stops the others. ``jobs`` runs go
    at once, each its own training process. ``on_run_end(spec, marker)`` is
    called (serialised) after each run that trained in this call.

    Returns ``work_dir -> marker`` of the runs that trained in this call.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f'jobs must be an int >= 1, got {jobs!r}')
    launcher = specs[0].launcher if specs else 'none'
    if launcher != 'none' and jobs != 1:
        raise ValueError('--jobs must be 1 with a launcher: each run already '
                         'spans all the launched processes')
    progress = Progress(total=len(specs), stream=stream,
                        interval=progress_interval)
    for spec in specs:
        check_same_run(spec)
    todo = []
    for spec in specs:
        state = run_state(spec.work_dir)
        if state == 'done':
            progress.finished += 1
            if _is_main_rank():
                progress.write(f'[{spec.label}] already done, skipped')
        else:
            todo.append(spec)
    results: Dict[str, dict] = {}
    slots = list(range(jobs))
    slot_lock, end_lock = threading.Lock(), threading.Lock()

    index_of = {spec.work_dir: i for i, spec in enumerate(specs)}

    def work(spec: RunSpec) -> None:
        if STOPPING.is_set():
            return
        with slot_lock:
            slot = slots.pop(0)
        try:
            status = execute_run(spec, trainer, progress,
                                 child_env(slot, jobs, launcher,
                                           index_of[spec.work_dir]))
            if status['status'] == 'interrupted':
                return
            with end_lock:
                results[spec.work_dir] = status
                if on_run_end is not None and _is_main_rank():
                    on_run_end(spec, status)
        finally:
            with slot_lock:
                slots.append(slot)

    if jobs == 1:
        for spec in todo:
            work(spec)
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for future in [pool.submit(work, spec) for spec in todo]:
                future.result()
    return results


class VariantAction(argparse.Action):
    """argparse action of ``--variant NAME [K=V ...]`` and ``--variant-config
    NAME CONFIG``: both append a :class:`Variant` to one list, in command-line
    order (the first is the baseline). The K=V values are checked here and
    parsed later by mmengine's ``DictAction`` (:func:`parse_overrides`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        variants = list(getattr(namespace, self.dest, None) or [])
        if option_string == '--variant-config':
            name, config = values
            variants.append(Variant(name=name, config=config))
        else:
            if not values:
                parser.error('--variant needs a NAME')
            name, *items = values
            if '=' in name:
                parser.error(f'--variant: the first value is the variant\'s '
                             f'NAME, got {name!r}')
            try:
                parse_overrides(items, f'--variant {name}')
            except ValueError as err:
                parser.error(str(err))
            variants.append(Variant(name=name, args=list(items)))
        setattr(namespace, self.dest, variants)


def created_keys(cfg, keys: Sequence[str]) -> List[str]:
    """The dotted ``keys`` whose parent dict is absent from ``cfg``: such an
    override creates a new dict holding only the given keys (what
    ``--cfg-options`` does), so whatever default the module had there is
    replaced as a whole. Returns the created parents, e.g.
    ``model.bbox_head.loss.loss_bbox``."""
    created = []
    if hasattr(cfg, 'to_dict'):  # an mmengine Config
        cfg = cfg.to_dict()
    for key in keys:
        parts = key.split('.')
        node = cfg
        for depth, part in enumerate(parts[:-1]):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, (list, tuple)) and part.isdigit() \
                    and int(part) < len(node):
                node = node[int(part)]
            else:
                parent = '.'.join(parts[:depth + 1])
                if parent not in created:
                    created.append(parent)
                break
    return created


def replaced_defaults(variant: Variant) -> List[str]:
    """Warnings for ``variant``'s overrides that create a whole sub-dict
    (filled in by :func:`plan`)."""
    return [f'variant {variant.name}: {parent} is not in the config, so the '
            f'override builds it from {", ".join(keys)} alone, every other '
            'argument at that type\'s own default (not at the default the '
            'enclosing module had: YOLOv8Loss\'s loss_bbox has loss_weight '
            '7.5, for one)'
            for parent, keys in variant.created]
