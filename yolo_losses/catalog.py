"""A catalog of the registered losses: names, constructor arguments, summaries.

``tools/list_losses.py`` prints it. What counts as a loss: an entry of the
``yolo_losses`` ``MODELS`` registry itself (not of mmengine's root registry)
that is a subclass of ``torch.nn.Module`` and either subclasses
``yolo_losses.losses.base.BaseLoss`` or has a class name ending in ``Loss``
(mmdet's naming convention, which every loss here, in mmdet and in mmyolo
follows). Detectors, backbones, necks, heads and data preprocessors that the
training stack registers in the same registry are left out by that rule.
Losses registered by plugins (entry-point group ``yolo_losses.plugins``) and by
modules imported through ``custom_imports`` are included.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import re
from typing import Any, Dict, List, Optional

from torch import nn

from .losses.base import BaseLoss
from .registry import MODELS, load_plugins, plugin_entry_points

__all__ = ['Argument', 'LossInfo', 'is_loss_class', 'constructor_arguments',
           'describe_registered_losses', 'format_table', 'format_markdown',
           'losses_as_json']

_NO_DEFAULT = inspect.Parameter.empty
# a sentence ends at . ! or ? followed by a capital or a quoted name, so
# abbreviations such as 'e.g. the' do not end it
_SENTENCE_END = re.compile(r'(?<=[.!?])\s+(?=[A-Z`])')


@dataclasses.dataclass
class Argument:
    """One constructor argument; ``required`` when it has no default."""

    name: str
    default: Any = None
    required: bool = False

    def __str__(self) -> str:
        return self.name if self.required else f'{self.name}={self.default!r}'


@dataclasses.dataclass
class LossInfo:
    """A registered loss: registry name, defining module, the plugin (entry
    point name) that provided it if any, constructor arguments, the first
    sentence of its own docstring, and its reference (the class attribute
    ``catalog_reference``: repository @ commit, paper, where the defaults
    come from; empty when the class has none)."""

    name: str
    module: str
    plugin: Optional[str]
    arguments: List[Argument]
    summary: str
    reference: str = ''


def is_loss_class(obj: Any) -> bool:
    """The catalog's rule for "this registry entry is a loss"."""
    return (inspect.isclass(obj) and issubclass(obj, nn.Module)
            and (issubclass(obj, BaseLoss) or obj.__name__.endswith('Loss')))


def constructor_arguments(cls: type) -> List[Argument]:
    """Keyword arguments of ``cls(...)`` with their defaults.

    A constructor that forwards ``**kwargs`` to its base class also accepts
    the base's arguments; those follow its own, as Python resolves them.
    """
    arguments: List[Argument] = []
    seen = set()
    for klass in cls.__mro__:
        if klass in (nn.Module, object):
            break
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        forwards_kwargs = False
        for param in list(inspect.signature(init).parameters.values())[1:]:
            if param.kind is param.VAR_KEYWORD:
                forwards_kwargs = True
            elif param.kind is not param.VAR_POSITIONAL and param.name not in seen:
                seen.add(param.name)
                required = param.default is _NO_DEFAULT
                arguments.append(Argument(
                    param.name, None if required else param.default, required))
        if not forwards_kwargs:
            break
    return arguments


def _summary(cls: type) -> str:
    """First sentence of the first paragraph of the class's own docstring
    (an inherited docstring describes another class): its summary line under
    PEP 257, also when the author wrapped that sentence over two lines."""
    doc = cls.__dict__.get('__doc__')
    if not doc:
        return ''
    paragraph = ' '.join(inspect.cleandoc(doc).split('\n\n')[0].split())
    return _SENTENCE_END.split(paragraph, maxsplit=1)[0]


def _plugin_packages() -> Dict[str, str]:
    """Top-level package of each installed plugin entry point -> its name."""
    packages = {}
    for entry_point in plugin_entry_points():
        packages.setdefault(entry_point.module.split('.')[0], entry_point.name)
    return packages


def describe_registered_losses(registry=None) -> List[LossInfo]:
    """Every loss registered in ``registry`` (default ``yolo_losses.MODELS``),
    after importing the package's losses and the installed plugins, sorted by
    name."""
    registry = MODELS if registry is None else registry
    registry.import_from_location()
    load_plugins()
    plugins = _plugin_packages()
    losses = []
    for name, cls in sorted(registry.module_dict.items()):
        if not is_loss_class(cls):
            continue
        losses.append(LossInfo(
            name=name, module=cls.__module__,
            plugin=plugins.get(cls.__module__.split('.')[0]),
            arguments=constructor_arguments(cls), summary=_summary(cls),
            reference=str(getattr(cls, 'catalog_reference', '') or '')))
    return losses


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def losses_as_json(losses: List[LossInfo]) -> str:
    """The catalog as JSON: a list of objects with ``name``, ``module``,
    ``plugin``, ``summary`` and ``arguments`` (``name``, ``default``,
    ``required``; a default that JSON cannot hold is given as its repr), and
    ``reference`` for the losses that name one)."""
    records = []
    for info in losses:
        record = dataclasses.asdict(info)
        if not record['reference']:
            del record['reference']
        for argument in record['arguments']:
            argument['default'] = _jsonable(argument['default'])
        records.append(record)
    return json.dumps(records, indent=2)


def _rows(losses: List[LossInfo]) -> List[List[str]]:
    rows = []
    for info in losses:
        summary = info.summary
        if info.reference:
            summary = f'{summary} Reference: {info.reference}.'.strip()
        if info.plugin is not None:
            summary = f'{summary} [plugin {info.plugin}]'.strip()
        rows.append([info.name, summary,
                     ', '.join(str(a) for a in info.arguments)])
    return rows


_HEADER = ['Loss', 'Description', 'Arguments (defaults)']


def format_table(losses: List[LossInfo]) -> str:
    """A plain-text table, one loss a line."""
    rows = [_HEADER] + _rows(losses)
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = []
    for index, row in enumerate(rows):
        lines.append(f'{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  '
                     f'{row[2]}'.rstrip())
        if index == 0:
            lines.append(f'{"-" * widths[0]}  {"-" * widths[1]}  '
                         f'{"-" * len(_HEADER[2])}')
    return '\n'.join(lines)


def format_markdown(losses: List[LossInfo]) -> str:
    """A Markdown table (for the README)."""
    lines = ['| ' + ' | '.join(_HEADER) + ' |', '|---|---|---|']
    for name, summary, arguments in _rows(losses):
        cells = [f'`{name}`', summary.replace('|', '\\|'),
                 f'`{arguments}`' if arguments else '']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
