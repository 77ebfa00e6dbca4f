"""Callbacks: anytime performance at every restart, hyperparameters in logs.

- `anytime.py`: `AnytimeRecorder`; its files (`_anytime_files.py`), the
  run ledger that protects earlier results (`_anytime_run.py`) and its plot
  (`_anytime_plot.py`).
- `hyperparameters.py`: `HyperparameterLogger`.
- `snapshots.py`: the recorder's snapshots and `snapshot_ensemble_predict`.
"""

from keras_adamwr.callbacks.anytime import AnytimeRecorder
from keras_adamwr.callbacks.hyperparameters import HyperparameterLogger
from keras_adamwr.callbacks.snapshots import snapshot_ensemble_predict

__all__ = ["AnytimeRecorder", "HyperparameterLogger",
           "snapshot_ensemble_predict"]
