import pytest
import torch

import yolo_losses


@pytest.fixture(autouse=True)
def _fresh_state():
    """Each test starts with validation on and a fixed seed."""
    torch.manual_seed(0)
    with yolo_losses.validation(True):
        yield
