"""What ``tools/train.py`` and ``tools/test.py`` do, on mmengine's Runner.

Everything that can fail on bad input (config key typos, a missing data
root, a corrupt annotation file, a checkpoint of another model) is checked
by ``preflight`` before the Runner exists, because creating a Runner
already writes into the work dir: a failed command leaves it untouched.
"""
from __future__ import annotations

import contextlib
import difflib
import os.path as osp
from typing import Dict, Iterator, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from ..kernels import fused, set_fused
from ..validation import set_validation, validation
from .checkpoint import check_checkpoint_matches, checkpoint_globals
from .loss_schedule import check_class_weight_power

# Top-level keys mmengine's Runner.from_cfg (and Runner itself) read, plus
# this package's own.
RUNNER_KEYS = (
    'model', 'work_dir', 'train_dataloader', 'val_dataloader',
    'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg', 'auto_scale_lr',
    'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
    'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
    'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level',
    'visualizer', 'default_scope', 'randomness', 'experiment_name',
    'model_wrapper_cfg', 'find_unused_parameters', 'sync_bn', 'compile',
    'custom_imports', 'yolo_losses_validate', 'yolo_losses_fused',
    'class_weight_power')


def _loss_switch_values(cfg: Config) -> Dict[str, bool]:
    values = {}
    for key in ('yolo_losses_validate', 'yolo_losses_fused'):
        value = cfg.get(key, True)
        if not isinstance(value, bool):
            raise TypeError(f'config key {key} must be True or False, got {value!r}')
        values[key] = value
    return values


def apply_loss_switches(cfg: Config) -> None:
    """Set the process defaults of the losses' switches from the config.

    ``yolo_losses_validate`` (default True): the losses' value checks
    (:func:`yolo_losses.set_validation`). ``yolo_losses_fused`` (default
    True): the fused Triton kernels of the element-wise losses, used on CUDA
    when Triton imports; False keeps every loss on its PyTorch path
    (:func:`yolo_losses.kernels.set_fused`). ``train`` and ``test`` use
    :func:`loss_switches` instead, which leaves the defaults alone.
    """
    values = _loss_switch_values(cfg)
    set_validation(values['yolo_losses_validate'])
    set_fused(values['yolo_losses_fused'])


@contextlib.contextmanager
def loss_switches(cfg: Config) -> Iterator[None]:
    """The config's switches (see :func:`apply_loss_switches`) as overrides
    of the calling context for the duration of the block: a run changes
    nothing for other threads, and after it the process is as before."""
    values = _loss_switch_values(cfg)
    with validation(values['yolo_losses_validate']), \
            fused(values['yolo_losses_fused']):
        yield


class YOLORunner(Runner):
    """mmengine's ``Runner`` whose checkpoint loads (``load_from``,
    ``resume``) run inside :func:`checkpoint_globals`: the few globals an
    mmengine checkpoint holds are allow-listed for ``weights_only`` during
    those loads only, never for the rest of the process."""

    def load_or_resume(self) -> None:
        with checkpoint_globals():
            return super().load_or_resume()


def check_config_keys(cfg: Config) -> None:
    """``KeyError`` for a top-level key that looks like a misspelt Runner key.

    mmengine ignores unknown top-level keys, so ``trian_dataloader`` would
    silently train with nothing. Keys far from every known one are the
    config's own variables (``img_scale``, ``data_root``, ...) and pass.
    """
    for key in cfg.keys():
        if key in RUNNER_KEYS or key.startswith('_'):
            continue
        close = difflib.get_close_matches(key, RUNNER_KEYS, n=1, cutoff=0.8)
        if close:
            raise KeyError(f'config key {key!r} is not a Runner key; did you '
                           f'mean {close[0]!r}?')
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if loader is not None and 'dataset' not in loader:
            raise KeyError(f'{name} needs a "dataset" entry')


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {path!r} does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    check_config_keys(cfg)
    return cfg


def _scope(cfg: Config):
    return DefaultScope.overwrite_default_scope(
        cfg.get('default_scope') or 'yolo_losses')


def preflight(cfg: Config, checkpoint: Optional[str] = None,
              loaders: Sequence[str] = ('train_dataloader', 'val_dataloader',
                                        'test_dataloader')) -> None:
    """Build the model, check ``checkpoint`` fits it, then build the datasets.

    Raises the datasets' and builders' own clear errors (missing files,
    corrupt json, unknown types with close names, bad arguments) and
    ``FileNotFoundError`` / ``ValueError`` for a missing, unreadable or
    foreign checkpoint, and ``ModuleNotFoundError`` for TensorBoard logging
    without the tensorboard package, before anything is written. The
    checkpoint comes before the datasets (the default data generates about
    1,900 images), so a bad one fails in seconds.
    """
    # this package's registries: an unknown type lists the closest names
    from ..registry import DATASETS, MODELS
    from .visualizer import check_tensorboard, tensorboard_requested

    visualizer = cfg.get('visualizer')
    if tensorboard_requested(visualizer):
        check_tensorboard('visualizer.tensorboard=True'
                          if visualizer.get('tensorboard') is True else
                          'a TensorboardVisBackend in visualizer.vis_backends')
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    with _scope(cfg):
        model = MODELS.build(cfg.model)
        if checkpoint is not None:
            check_checkpoint_matches(model, checkpoint)
        for name in loaders:
            loader = cfg.get(name)
            if loader is None:
                continue
            dataset_cfg = loader['dataset'].copy()
            dataset_cfg['lazy_init'] = False
            dataset = DATASETS.build(dataset_cfg)
            if len(dataset) == 0:
                raise ValueError(f'{name}.dataset is empty')


def check_launcher(launcher: str) -> None:
    """The launcher is one this machine can run, before anything is built.

    mmengine's slurm launcher binds each task to a GPU
    (``torch.cuda.set_device``; without ``SLURM_LOCALID`` it divides by the
    GPU count): without CUDA it would fail deep inside mmengine, so say so
    here. On CPUs, start the processes with ``torchrun`` (inside ``srun``
    if you like) and ``--launcher pytorch``, which uses gloo.
    """
    if launcher not in ('none', 'pytorch', 'slurm'):
        raise ValueError(
            f'launcher must be none, pytorch or slurm, got {launcher!r}')
    if launcher == 'slurm' and not torch.cuda.is_available():
        raise RuntimeError(
            '--launcher slurm needs CUDA GPUs (mmengine\'s slurm launcher binds '
            'each task to one) and none is available; on CPUs run the tasks '
            'with torchrun and --launcher pytorch (gloo backend)')


def _setup_distributed(cfg: Config, launcher: str) -> None:
    check_launcher(launcher)
    cfg.launcher = launcher
    if launcher == 'none':
        return
    cfg.setdefault('model_wrapper_cfg',
                   dict(type='yolo_losses.YOLODistributedDataParallel'))
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if torch.cuda.is_available():
        dist_cfg.setdefault('backend', 'nccl')
        return
    dist_cfg['backend'] = 'gloo'
    if launcher == 'pytorch':
        # mmengine's init_dist calls torch.cuda.set_device, which a CPU
        # build lacks; the Runner skips its own init when a group exists
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group(backend='gloo')


def _apply_amp(cfg: Config) -> None:
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') not in ('OptimWrapper',
                                                    'AmpOptimWrapper'):
        raise ValueError('--amp replaces optim_wrapper.type OptimWrapper, '
                         f'got {wrapper.get("type")!r}')
    if torch.cuda.is_available():
        wrapper.type = 'AmpOptimWrapper'
        wrapper.dtype = ('bfloat16' if torch.cuda.is_bf16_supported()
                         else 'float16')
        wrapper.setdefault('loss_scale', 'dynamic')
    else:
        wrapper.type = 'yolo_losses.CPUAmpOptimWrapper'
        wrapper.dtype = 'bfloat16'


def default_work_dir(config: str) -> str:
    return osp.join('work_dirs', osp.splitext(osp.basename(config))[0])


def train(config: str, work_dir: Optional[str] = None, amp: bool = False,
          resume: Optional[str] = None, cfg_options: Optional[dict] = None,
          launcher: str = 'none'):
    """Train with mmengine's Runner; returns the runner after training.

    ``resume``: None (fresh run), 'auto' (latest checkpoint of the work
    dir) or a checkpoint path.
    """
    from mmengine.runner import find_latest_checkpoint

    check_launcher(launcher)
    cfg = load_config(config, cfg_options)
    cfg.work_dir = work_dir or cfg.get('work_dir') or default_work_dir(config)
    checkpoint = None
    if resume is not None:
        cfg.resume = True
        if resume == 'auto':
            cfg.load_from = None
            checkpoint = find_latest_checkpoint(cfg.work_dir)
            if checkpoint is None:
                raise FileNotFoundError(
                    f'--resume: no checkpoint in work dir {cfg.work_dir!r}')
        else:
            cfg.load_from = checkpoint = resume
    elif cfg.get('load_from'):
        checkpoint = cfg.load_from
    if amp:
        _apply_amp(cfg)
    # ClassWeightsHook reads it; a bad value fails before the work dir exists
    check_class_weight_power(cfg.get('class_weight_power', 0.0))
    with loss_switches(cfg):
        preflight(cfg, checkpoint)
        _setup_distributed(cfg, launcher)
        runner = YOLORunner.from_cfg(cfg)
        runner.train()
    return runner


def test(config: str, checkpoint: str, work_dir: Optional[str] = None,
         cfg_options: Optional[dict] = None, launcher: str = 'none',
         grid_file: Optional[str] = 'predictions.png',
         grid_images: int = 16) -> Dict[str, float]:
    """Evaluate ``checkpoint`` on the config's test data; returns metrics.

    Also saves a grid of predictions on the first ``grid_images`` test
    images as ``WORK_DIR/<grid_file>`` (PNG).
    """
    check_launcher(launcher)
    cfg = load_config(config, cfg_options)
    cfg.work_dir = work_dir or cfg.get('work_dir') or default_work_dir(config)
    cfg.load_from = checkpoint
    cfg.resume = False
    with loss_switches(cfg):
        preflight(cfg, checkpoint, loaders=('test_dataloader',))
        _setup_distributed(cfg, launcher)
        runner = YOLORunner.from_cfg(cfg)
        metrics = runner.test()
        if grid_file and runner.rank == 0:
            from .visualize import save_prediction_grid
            path = osp.join(cfg.work_dir, grid_file)
            save_prediction_grid(runner.model, runner.test_dataloader, path,
                                 grid_images)
            runner.logger.info(f'prediction grid saved to {path}')
    return metrics


def format_metrics(metrics: Dict[str, float]) -> List[str]:
    """Lines for the console: the two headline APs first."""
    lines = []
    for key, title in (('coco/bbox_mAP', 'mAP@[.5:.95]'),
                       ('coco/bbox_mAP_50', 'mAP@.5')):
        if key in metrics:
            lines.append(f'{title}: {metrics[key]:.4f}')
    return lines


def final_val_metrics(work_dir: str) -> Dict[str, float]:
    """The last validation row that ``CurvesHook`` recorded ({} if none)."""
    from .plotting import read_curves

    try:
        rows = read_curves(work_dir)['val']
    except FileNotFoundError:
        return {}
    return {k: v for k, v in rows[-1].items() if k != 'epoch'} if rows else {}
