"""Run under another Keras backend (KERAS_BACKEND set by the caller).

Prints one JSON line: lockstep differences against tests/reference.py,
schedule cycle indices at int32 limits, and the decay mask of a model.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_adamwr  # noqa: E402
from tests import reference  # noqa: E402


def lockstep(constructor, algorithm, **kwargs):
    alpha, steps = 2.0**-7, 60
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(4, 3)).astype("float32")
    grads = [rng.normal(size=(4, 3)).astype("float32") for _ in range(steps)]
    schedule = keras_adamwr.CosineWarmRestarts(alpha, 7, t_mul=1.5, warmup_steps=3)
    optimizer = constructor(schedule, normalized_weight_decay=0.3, **kwargs)
    variable = keras.Variable(theta)
    actual = []
    for gradient in grads:
        optimizer.apply([gradient], [variable])
        actual.append(keras.ops.convert_to_numpy(variable))
    etas = [float(schedule.multiplier_tensor(t)) for t in range(steps)]
    _, _, lengths = reference.schedule_reference(steps, 7, 1.5, warmup_steps=3)
    expected = algorithm(theta, grads, etas, reference.normalized_lambdas(0.3, lengths),
                         alpha, **kwargs)
    return max(float(np.abs(a - e).max()) for a, e in zip(actual, expected))


def decay_mask():
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4),
                              keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    optimizer = keras_adamwr.AdamWR(1e-2, first_cycle_steps=3,
                                    exclude_from_weight_decay=["gamma", "dense_.*/bias"],
                                    gradient_accumulation_steps=2)
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 6)).astype("float32")
    model.fit(x, (x[:, 0] > 0).astype("int32"), batch_size=16, epochs=2, verbose=0)
    return ([optimizer.uses_weight_decay(v) for v in model.trainable_variables],
            int(optimizer.iterations), len(optimizer._scratch.compiled))


if __name__ == "__main__":
    schedule = keras_adamwr.CosineWarmRestarts(1.0, 1)
    cycles = schedule.cycle_position(np.array([8191, 2**31 - 1], "int32"))[0]
    # Lengths past what an int32 counter holds, a cycle limit, a table cut
    # at 2**31 - 1 (the JAX counter) from one made for int64.
    largest = np.array(2**31 - 1, "int32")
    big = keras_adamwr.CosineWarmRestarts(1.0, 2**40, t_mul=1.0, warmup_steps=2**50)
    limited = keras_adamwr.CosineWarmRestarts(1.0, 3, cycle_limit=2, min_lr_ratio=0.5)
    grown = keras_adamwr.CosineWarmRestarts(1.0, 3, t_mul=1.5)
    limits = [float(big(largest)), float(limited(np.array(9, "int32"))), float(limited(largest)),
              int(keras.ops.convert_to_numpy(grown.cycle_position(largest)[0])),
              float(grown(largest))]
    mask, updates, compiled = decay_mask()
    print(json.dumps({
        "backend": keras.backend.backend(),
        "adamw": lockstep(keras_adamwr.AdamW, reference.adamw_reference, amsgrad=True),
        "sgdw": lockstep(keras_adamwr.SGDW, reference.sgdw_reference, nesterov=True),
        "cycles": [int(c) for c in keras.ops.convert_to_numpy(cycles)],
        "limits": limits,
        "mask": mask,
        "updates": updates,
        "compiled_functions": compiled,  # jit_compile's XLA update: TF only
    }))
