import importlib.util
import os
import sys

# Without a GPU the fused Triton kernels run in Triton's interpreter
# (tests/test_fused_kernels.py). Triton reads TRITON_INTERPRET when it is
# first imported, and importing torch._dynamo or mmengine imports it, so the
# switch is set here, before any test module is collected.
if 'triton' not in sys.modules and importlib.util.find_spec('triton') is not None:
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault('TRITON_INTERPRET', '1')

import pytest  # noqa: E402
import torch  # noqa: E402

import yolo_losses  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_state():
    """Each test starts with validation on and a fixed seed."""
    torch.manual_seed(0)
    with yolo_losses.validation(True):
        yield
