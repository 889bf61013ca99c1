"""Per-class multipliers of a composite loss's class term (ultralytics'
``model.class_weights``), shared by the composite losses that take them.

A loss that mixes in :class:`ClassWeights` gets:

- the constructor argument ``class_weights`` (``None`` or a length-C
  sequence), kept in the persistent buffer ``class_weights`` of shape
  ``[C]`` (float32; ones when ``None``), saved and resumed with the model;
- ``set_class_weights(weights)``: checks (length C, finite, ``>= 0``;
  ``ValueError`` naming ``class_weights``) before copying in; ``None`` resets
  to ones;
- ``class_weighted``: a Python flag, False while the weights are all ones,
  so that the default path runs exactly the operators it ran without class
  weights (no multiply by ones, no host sync in the call). It follows
  ``set_class_weights`` and ``load_state_dict``; write the buffer only
  through those two.

A checkpoint without the buffer (saved before it existed) loads with ones.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

ClassWeightsArg = Optional[Sequence[float]]


def check_class_weights(weights, num_classes: int, name: str = 'class_weights') -> Tensor:
    """``weights`` as a float32 CPU tensor ``[C]``; ValueError/TypeError
    naming ``name`` unless it holds ``num_classes`` finite numbers ``>= 0``."""
    if not isinstance(weights, Tensor) and hasattr(weights, '__array__'):
        # numpy arrays (ultralytics keeps its class weights as one) are not Sequences
        weights = torch.as_tensor(weights)
    if isinstance(weights, Tensor):
        values = weights.detach().to('cpu', torch.float64).reshape(-1).tolist() \
            if weights.dim() <= 1 else None
        if values is None:
            raise ValueError(f'{name} must be one number per class (shape [{num_classes}]), '
                             f'got a tensor of shape {tuple(weights.shape)}')
    else:
        if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
            raise TypeError(f'{name} must be None or a sequence of {num_classes} numbers '
                            f'(one per class), got {type(weights).__name__}')
        try:
            values = [float(w) for w in weights]
        except (TypeError, ValueError):
            raise TypeError(f'{name} must hold numbers, got {weights!r}') from None
    if len(values) != num_classes:
        raise ValueError(f'{name} needs one weight per class ({num_classes}), '
                         f'got {len(values)}')
    if not all(math.isfinite(w) and w >= 0 for w in values):
        raise ValueError(f'{name} must be finite and >= 0, got {values}')
    return torch.tensor(values, dtype=torch.float32)


class ClassWeights(nn.Module):
    """Mixin of the ``class_weights`` buffer; call ``_init_class_weights``
    from ``__init__`` once ``num_classes`` is set."""

    num_classes: int

    def _init_class_weights(self, class_weights: ClassWeightsArg) -> None:
        weights = torch.ones(self.num_classes) if class_weights is None \
            else check_class_weights(class_weights, self.num_classes)
        self.register_buffer('class_weights', weights, persistent=True)
        self.class_weighted = bool((weights != 1).any())
        self.register_load_state_dict_post_hook(_refresh_class_weighted)

    def set_class_weights(self, weights: ClassWeightsArg) -> None:
        """Set the per-class multipliers of the class term (``None``: ones).

        Checked before anything changes; the buffer keeps its device."""
        new = torch.ones(self.num_classes) if weights is None \
            else check_class_weights(weights, self.num_classes)
        with torch.no_grad():
            self.class_weights.copy_(new)
        self.class_weighted = bool((new != 1).any())

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        key = prefix + 'class_weights'
        if key not in state_dict and hasattr(self, 'class_weights'):
            # a checkpoint from before the buffer existed: unweighted
            state_dict[key] = torch.ones_like(self.class_weights)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)


def _refresh_class_weighted(module: ClassWeights, incompatible_keys) -> None:
    # a load happens outside the training step: one host read is fine here
    module.class_weighted = bool((module.class_weights != 1).any())
