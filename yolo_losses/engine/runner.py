"""What ``tools/train.py`` and ``tools/test.py`` do, on mmengine's Runner.

Everything that can fail on bad input (config key typos, a missing data
root, a corrupt annotation file, a checkpoint of another model) is checked
by ``preflight`` before the Runner exists, because creating a Runner
already writes into the work dir: a failed command leaves it untouched.
"""
from __future__ import annotations

import difflib
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from .. import set_validation
from ..kernels import set_fused
from .checkpoint import allow_checkpoint_globals, check_checkpoint_matches
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


def apply_loss_switches(cfg: Config) -> None:
    """The config's process-wide switches of the losses.

    ``yolo_losses_validate`` (default True): the losses' value checks
    (:func:`yolo_losses.set_validation`). ``yolo_losses_fused`` (default
    True): the fused Triton kernels of the element-wise losses, used on CUDA
    when Triton imports; False keeps every loss on its PyTorch path
    (:func:`yolo_losses.kernels.set_fused`).
    """
    for key in ('yolo_losses_validate', 'yolo_losses_fused'):
        value = cfg.get(key, True)
        if not isinstance(value, bool):
            raise TypeError(f'config key {key} must be True or False, got {value!r}')
    set_validation(cfg.get('yolo_losses_validate', True))
    set_fused(cfg.get('yolo_losses_fused', True))


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
    """Build the model and datasets once and check ``checkpoint`` fits.

    Raises the datasets' and builders' own clear errors (missing files,
    corrupt json, unknown types with close names, bad arguments) and
    ``ValueError`` for a checkpoint of another model, before anything is
    written.
    """
    # this package's registries: an unknown type lists the closest names
    from ..registry import DATASETS, MODELS

    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    with _scope(cfg):
        model = MODELS.build(cfg.model)
        for name in loaders:
            loader = cfg.get(name)
            if loader is None:
                continue
            dataset_cfg = loader['dataset'].copy()
            dataset_cfg['lazy_init'] = False
            dataset = DATASETS.build(dataset_cfg)
            if len(dataset) == 0:
                raise ValueError(f'{name}.dataset is empty')
    if checkpoint is not None:
        check_checkpoint_matches(model, checkpoint)


def _setup_distributed(cfg: Config, launcher: str) -> None:
    if launcher not in ('none', 'pytorch', 'slurm'):
        raise ValueError(
            f'launcher must be none, pytorch or slurm, got {launcher!r}')
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
    from mmengine.runner import Runner, find_latest_checkpoint

    allow_checkpoint_globals()
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
    apply_loss_switches(cfg)
    # ClassWeightsHook reads it; a bad value fails before the work dir exists
    check_class_weight_power(cfg.get('class_weight_power', 0.0))
    preflight(cfg, checkpoint)
    _setup_distributed(cfg, launcher)
    runner = Runner.from_cfg(cfg)
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
    from mmengine.runner import Runner

    allow_checkpoint_globals()
    cfg = load_config(config, cfg_options)
    cfg.work_dir = work_dir or cfg.get('work_dir') or default_work_dir(config)
    cfg.load_from = checkpoint
    cfg.resume = False
    apply_loss_switches(cfg)
    preflight(cfg, checkpoint, loaders=('test_dataloader',))
    _setup_distributed(cfg, launcher)
    runner = Runner.from_cfg(cfg)
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
