"""A training process for tests/test_anytime_lock.py: two at once, one folder.

    python -m tests._lock_worker SHARED NAME

Imports, builds the model of `tests/_fault_worker.py`, writes
`SHARED/ready-NAME` and waits for `SHARED/go` (the test creates it once
both are ready, so both `fit`s start at the same moment). Then it trains
with an `AnytimeRecorder` on `SHARED/log`; the first epoch end waits (up to
30 s) for the other process to be refused, so that the two runs overlap.
Writes `SHARED/done-NAME` (the steps of its rows) or, when refused,
`SHARED/refused-NAME` (the message) and exits with status 3.
"""

import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

import keras_adamwr  # noqa: E402
from tests import _fault_worker as base  # noqa: E402


def _wait_for(test, seconds):
    deadline = time.monotonic() + seconds
    while not test() and time.monotonic() < deadline:
        time.sleep(0.01)


class _Overlap(keras.callbacks.Callback):
    def __init__(self, shared):
        super().__init__()
        self.shared = shared

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            _wait_for(lambda: any(name.startswith("refused-")
                                  for name in os.listdir(self.shared)), 30)


def main(shared, name):
    model = base.build_model()
    x, y = base.data()
    recorder = keras_adamwr.AnytimeRecorder(base.data(32, seed=1),
                                            log_dir=os.path.join(shared, "log"), verbose=0)
    open(os.path.join(shared, f"ready-{name}"), "w").close()
    _wait_for(lambda: os.path.exists(os.path.join(shared, "go")), 300)
    try:
        model.fit(x, y, batch_size=base.BATCH_SIZE, epochs=3, shuffle=False, verbose=0,
                  callbacks=[recorder, _Overlap(shared)])
    except ValueError as error:
        with open(os.path.join(shared, f"refused-{name}"), "w") as file:
            file.write(str(error))
        return 3
    with open(os.path.join(shared, f"done-{name}"), "w") as file:
        json.dump([row["step"] for row in recorder.records], file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
