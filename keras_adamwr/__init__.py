"""keras_adamwr: decoupled weight decay and warm restarts for Keras 3.

Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019),
implemented as the paper states it. See `docs/` for the update rules.
"""

# First: a clear ImportError for a Keras older than 3.10 or a missing backend.
from keras_adamwr import _requirements  # noqa: F401
from keras_adamwr.optimizers._checkpoint_tag import untagged_checkpoint_state
from keras_adamwr.optimizers import DecayConventionWarning
from keras_adamwr.optimizers import normalized_weight_decay
from keras_adamwr.optimizers import AdamW
from keras_adamwr.optimizers import AdamWR
from keras_adamwr.optimizers import decoupled
from keras_adamwr.callbacks import AnytimeRecorder
from keras_adamwr.callbacks import HyperparameterLogger
from keras_adamwr.saving import atomic_save
from keras_adamwr.saving import build_optimizer
from keras_adamwr.saving import export_training_state
from keras_adamwr.saving import restore_training_state
from keras_adamwr.schedules import CosineWarmRestarts
from keras_adamwr.schedules import batches_per_epoch
from keras_adamwr.schedules import plot_schedule
from keras_adamwr.schedules import schedule_table
from keras_adamwr.optimizers import SGDW
from keras_adamwr.optimizers import SGDWR
from keras_adamwr.callbacks import snapshot_ensemble_predict
from keras_adamwr.version import __version__

__all__ = [
    "AdamW",
    "AdamWR",
    "AnytimeRecorder",
    "CosineWarmRestarts",
    "HyperparameterLogger",
    "SGDW",
    "SGDWR",
    "DecayConventionWarning",
    "decoupled",
    "normalized_weight_decay",
    "snapshot_ensemble_predict",
    "atomic_save",
    "build_optimizer",
    "export_training_state",
    "restore_training_state",
    "untagged_checkpoint_state",
    "__version__",
    "batches_per_epoch",
    "plot_schedule",
    "schedule_table",
]
