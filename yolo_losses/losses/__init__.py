"""Every loss module of the package; importing this registers them all."""
import importlib
import pkgutil

# Each loss family lives in its own module; import them all so the registry
# sees every loss (the registry imports this package lazily).
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ('base', 'utils', 'fused_path'):
        importlib.import_module(f'{__name__}.{_module.name}')
