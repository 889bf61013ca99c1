"""Registries of ``yolo_losses``, children of mmengine's root registries.

Building by name imports the modules listed in ``locations`` lazily, and the
first lookup also imports every installed distribution that declares the
entry-point group ``yolo_losses.plugins`` (a plugin that fails to import is
reported with a warning and skipped, so unrelated builds keep working).
An unknown ``type`` fails with a ``KeyError`` naming it and the closest
registered names.
"""
from __future__ import annotations

import difflib
import warnings
from importlib import metadata
from importlib import import_module
from typing import Any, Callable, Iterable, List, Optional, Sequence

from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry, build_from_cfg, build_model_from_cfg

PLUGIN_GROUP = 'yolo_losses.plugins'
SCOPE = 'yolo_losses'

_plugins_loaded = False
_plugin_errors: dict = {}


def plugin_entry_points() -> list:
    """Installed entry points of group ``yolo_losses.plugins``."""
    found = metadata.entry_points()
    # ``entry_points(group=...)`` and ``select`` need Python >= 3.10; on 3.9
    # the call returns a dict of groups
    if hasattr(found, 'select'):
        return list(found.select(group=PLUGIN_GROUP))
    return list(found.get(PLUGIN_GROUP, ()))


def load_plugins(force: bool = False) -> List[str]:
    """Import every entry point of group ``yolo_losses.plugins`` once.

    Returns the names of the plugins imported by this call. A plugin that
    raises while importing gives a ``RuntimeWarning`` naming it and is
    recorded in ``plugin_errors()``; it never breaks other builds.
    """
    global _plugins_loaded
    if _plugins_loaded and not force:
        return []
    _plugins_loaded = True
    loaded = []
    for entry_point in plugin_entry_points():
        try:
            entry_point.load()
        except Exception as err:  # any failure of third-party code
            _plugin_errors[entry_point.name] = err
            warnings.warn(
                f'yolo_losses plugin {entry_point.name!r} '
                f'({entry_point.value}) failed to import and is skipped: '
                f'{type(err).__name__}: {err}', RuntimeWarning, stacklevel=2)
        else:
            loaded.append(entry_point.name)
    return loaded


def plugin_errors() -> dict:
    """Plugins that failed to import, as ``{name: exception}``."""
    return dict(_plugin_errors)


def registered_names(registry: Registry) -> List[str]:
    """Names reachable from ``registry`` without a scope prefix."""
    names = []
    node: Optional[Registry] = registry
    while node is not None:
        names.extend(node.module_dict)
        node = node.parent
    return sorted(set(names))


def _closest(name: str, candidates: Iterable[str], n: int = 5) -> List[str]:
    candidates = list(candidates)
    lower = {c.lower(): c for c in candidates}
    hits = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.5)
    return [lower[h] for h in hits]


def _with_suggestions(build: Callable) -> Callable:
    """Wrap an mmengine build function so unknown types list close names."""

    def build_func(cfg, registry, default_args=None) -> Any:
        try:
            return build(cfg, registry, default_args)
        except KeyError as err:
            obj_type = cfg.get('type') if hasattr(cfg, 'get') else None
            if not (isinstance(obj_type, str)
                    and str(err).strip('"\'').startswith(
                        f'{obj_type} is not in the')):
                raise
            close = _closest(obj_type.split('.')[-1],
                             registered_names(registry))
            hint = (f' Closest registered names: {", ".join(close)}.'
                    if close else ' No similar name is registered.')
            raise KeyError(
                f'Unknown type {obj_type!r} in the {registry.scope}::'
                f'{registry.name} registry.{hint} Register it with '
                '@MODELS.register_module(), import its module through '
                'custom_imports, or install a plugin.') from None

    return build_func


class PluginRegistry(Registry):
    """mmengine ``Registry`` that also imports the installed plugins, and
    imports the training stack only for a name the losses do not hold.

    ``locations`` are imported on first lookup, as mmengine does (here: the
    losses). ``training_locations`` (the detectors, the engine's modules)
    are imported only when a lookup by name misses in this registry's own
    table after that, e.g. ``MODELS.build(dict(type='YOLODetector'))``, or
    when :meth:`import_training_stack` is called (the training registries
    and the Runner). So building or calling a loss never imports cv2, mmcv's
    transforms, matplotlib or pycocotools, and building a detector by name
    still works from a fresh interpreter.
    """

    def __init__(self, *args, training_locations: Sequence[str] = (),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._training_locations = list(training_locations)
        self._training_imported = not self._training_locations

    def import_from_location(self) -> None:
        super().import_from_location()
        load_plugins()

    def import_training_stack(self) -> None:
        """Import ``training_locations`` (once)."""
        if self._training_imported:
            return
        self._training_imported = True
        for location in self._training_locations:
            import_module(location)

    def get(self, key: str) -> Any:
        if not self._training_imported and isinstance(key, str):
            self.import_from_location()
            scope, name = self.split_scope_key(key)
            # a name of our scope that the losses do not hold: look in the
            # training stack before falling back to the parents, so the
            # lookup order is what it is with everything imported
            if scope in (None, self.scope) and name not in self._module_dict:
                self.import_training_stack()
        return super().get(key)


MODELS = PluginRegistry(
    'model',
    parent=MMENGINE_MODELS,
    scope=SCOPE,
    build_func=_with_suggestions(build_model_from_cfg),
    locations=['yolo_losses.losses'],
    training_locations=['yolo_losses.models', 'yolo_losses.engine'])

TASK_UTILS = PluginRegistry(
    'task util',
    parent=MMENGINE_TASK_UTILS,
    scope=SCOPE,
    build_func=_with_suggestions(build_from_cfg),
    locations=['yolo_losses.assigners'])

# The training stack's registries. mmengine's Runner builds from its root
# registries, which switch to these children when ``default_scope`` is
# 'yolo_losses'; names they do not hold resolve in the parent (mmengine's own
# hooks, samplers, ... and mmcv's transforms, which register in mmengine's
# root TRANSFORMS). A child's lookup reads its parents' tables without
# importing the parents' modules, so each child also lists mmengine's.
def _child(name: str, parent: Registry, locations: List[str]) -> Registry:
    """A ``yolo_losses`` child of one of mmengine's root registries whose
    unknown-type errors list the closest registered names."""
    return Registry(name, parent=parent, scope=SCOPE,
                    build_func=_with_suggestions(build_from_cfg),
                    locations=locations)


DATASETS = _child('dataset', MMENGINE_DATASETS,
                  ['mmengine.dataset', 'yolo_losses.datasets'])
TRANSFORMS = _child('transform', MMENGINE_TRANSFORMS,
                    ['yolo_losses.datasets.transforms', 'mmcv.transforms'])
DATA_SAMPLERS = _child('data sampler', MMENGINE_DATA_SAMPLERS,
                       ['mmengine.dataset', 'yolo_losses.datasets'])
METRICS = _child('metric', MMENGINE_METRICS,
                 ['mmengine.evaluator', 'yolo_losses.evaluation'])
HOOKS = _child('hook', MMENGINE_HOOKS,
               ['mmengine.hooks', 'yolo_losses.engine'])
MODEL_WRAPPERS = _child('model_wrapper', MMENGINE_MODEL_WRAPPERS,
                        ['mmengine.model', 'yolo_losses.engine'])
OPTIM_WRAPPERS = _child('optim_wrapper', MMENGINE_OPTIM_WRAPPERS,
                        ['mmengine.optim', 'yolo_losses.engine'])
FUNCTIONS = _child('function', MMENGINE_FUNCTIONS,
                   ['mmengine.dataset', 'yolo_losses.datasets'])

# Children with nothing of ours, so that the Runner finds a 'yolo_losses'
# node in every registry tree it builds from (mmengine warns otherwise) and
# a plugin can register e.g. a loop or a parameter scheduler in this scope.
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope=SCOPE,
                 locations=['mmengine.runner'])
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, scope=SCOPE,
                      locations=['mmengine.optim'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, scope=SCOPE,
    locations=['mmengine.optim'])
PARAM_SCHEDULERS = Registry('parameter scheduler',
                            parent=MMENGINE_PARAM_SCHEDULERS, scope=SCOPE,
                            locations=['mmengine.optim'])
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, scope=SCOPE,
                     locations=['mmengine.evaluator'])
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, scope=SCOPE,
                       locations=['mmengine.visualization',
                                  'yolo_losses.engine.visualizer'])
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS, scope=SCOPE,
                       locations=['mmengine.visualization'])
LOG_PROCESSORS = Registry('log_processor', parent=MMENGINE_LOG_PROCESSORS,
                          scope=SCOPE, locations=['mmengine.runner'])

# Alias used in mmdet-style code.
LOSSES = MODELS


def build_loss(cfg: dict, **default_args: Any) -> Any:
    """Build a loss from a config dict such as ``dict(type='FocalLoss')``."""
    if not hasattr(cfg, 'get') or 'type' not in cfg:
        raise TypeError(
            f'build_loss(cfg): cfg must be a dict with a "type" key, got {cfg!r}')
    return MODELS.build(cfg, default_args=default_args or None)
