"""Learning-rate schedules: cosine annealing with warm restarts.

- `cosine_warm_restarts.py`: `CosineWarmRestarts` and `batches_per_epoch`.
- `_cycle_table.py`: the exact table of restart points in plain Python.
- `view.py`: `schedule_table` and `plot_schedule`, a look before training.
"""

from keras_adamwr.schedules.cosine_warm_restarts import CosineWarmRestarts
from keras_adamwr.schedules.cosine_warm_restarts import batches_per_epoch
from keras_adamwr.schedules.view import plot_schedule
from keras_adamwr.schedules.view import schedule_table

__all__ = ["CosineWarmRestarts", "batches_per_epoch", "plot_schedule",
           "schedule_table"]
