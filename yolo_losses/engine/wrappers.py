"""Model and optimizer wrappers that make mmengine's run on the CPU."""
from __future__ import annotations

from contextlib import contextmanager

import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper

from ..registry import MODEL_WRAPPERS, OPTIM_WRAPPERS


@MODEL_WRAPPERS.register_module()
class YOLODistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper that also takes a model on the CPU.

    mmengine passes ``device_ids=[LOCAL_RANK]``, which PyTorch rejects for a
    CPU module (gloo DDP); on the CPU they are dropped, on CUDA kept.
    """

    def __init__(self, module, device_ids=None, **kwargs) -> None:
        first = next(module.parameters(), None)
        if first is not None and first.device.type == 'cpu':
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """Mixed precision on the CPU: bfloat16 autocast, no loss scaling.

    mmengine's ``AmpOptimWrapper`` asserts a GPU; ``tools/train.py --amp``
    uses it on CUDA and this one on the CPU. bfloat16 has float32's range,
    so no gradient scaler is needed.
    """

    def __init__(self, dtype: str = 'bfloat16', **kwargs) -> None:
        if dtype not in ('bfloat16', 'float16'):
            raise ValueError(
                f'dtype must be "bfloat16" or "float16", got {dtype!r}')
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield
