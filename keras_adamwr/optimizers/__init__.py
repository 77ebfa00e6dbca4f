"""Optimizers with decoupled weight decay: the decay rule and its users.

- `base.py`: `DecoupledWeightDecay`, the decay rule shared by every optimizer
  here (`eta_t * lambda_t * theta`, normalized decay, exclusions, argument
  checks, per-restart decay).
- `adamw.py` (`AdamW`, `AdamWR`) and `sgdw.py` (`SGDW`, `SGDWR`): Algorithms 2
  and 1 of the paper.
- `decoupled.py` (`decoupled`): the same decay around any Keras optimizer.
- `_state.py` (saved state and its format tag), `_compiled.py` (the XLA
  update), `_checkpoint_tag.py` (the tag in `tf.train.Checkpoint`s),
  `_load_check.py` (`Model.load_weights` checks our state before loading).
"""

from keras_adamwr.optimizers.adamw import AdamW
from keras_adamwr.optimizers.adamw import AdamWR
from keras_adamwr.optimizers.base import DecayConventionWarning
from keras_adamwr.optimizers.base import DecoupledWeightDecay
from keras_adamwr.optimizers.decoupled import decoupled
from keras_adamwr.optimizers.base import normalized_weight_decay
from keras_adamwr.optimizers.sgdw import SGDW
from keras_adamwr.optimizers.sgdw import SGDWR
from keras_adamwr.optimizers import _load_check

_load_check.install()  # `load_weights` refuses our optimizer's state first

__all__ = ["AdamW", "AdamWR", "SGDW", "SGDWR", "DecayConventionWarning",
           "DecoupledWeightDecay", "decoupled", "normalized_weight_decay"]
