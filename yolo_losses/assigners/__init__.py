"""Target assigners (registered in ``yolo_losses.registry.TASK_UTILS``)."""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f'{__name__}.{_module.name}')
