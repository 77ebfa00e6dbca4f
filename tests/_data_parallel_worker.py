"""Keras' distribution API on JAX: `keras.distribution.DataParallel` over two
host CPU devices against one device, same data, same seeds.

Run with KERAS_BACKEND=jax and XLA_FLAGS=--xla_force_host_platform_device_count=2
(tests/test_keras_distribution.py does). Prints one JSON line per case: the
largest difference between the two runs' weights and optimizer variables.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_adamwr  # noqa: E402

GLOBAL_BATCH, STEPS = 16, 12
CASES = {
    "adamwr": dict(),
    "adamwr-accumulation": dict(gradient_accumulation_steps=2),
    "adamwr-ema": dict(use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=3),
    "sgdwr": dict(),
}


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(GLOBAL_BATCH * STEPS, 6)).astype("float32")
    return x, (x[:, 0] + x[:, 1] > 0).astype("int32")


def _optimizer(case):
    keywords = dict(first_cycle_steps=4, t_mul=2.0, normalized_weight_decay=0.05,
                    exclude_from_weight_decay=["gamma", "beta", "bias"])
    keywords.update(CASES[case])
    if case.startswith("sgdwr"):
        return keras_adamwr.SGDWR(0.05, momentum=0.9, **keywords)
    return keras_adamwr.AdamWR(1e-2, **keywords)


def fit(case):
    """Weights and optimizer variables after 12 global batches, as arrays."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        # No bias before BatchNormalization: its gradient is rounding noise,
        # which Adam would scale up to full steps of either sign.
        keras.Input((6,)), keras.layers.Dense(8, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"), keras.layers.Dense(2)])
    optimizer = _optimizer(case)
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data()
    model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0)
    # Paths without the layer names (dense_1/... in the second run).
    state = {f"weight:{i}": keras.ops.convert_to_numpy(v)
             for i, v in enumerate(model.weights)}
    state.update({f"optimizer:{i}": keras.ops.convert_to_numpy(v)
                  for i, v in enumerate(optimizer.variables)})
    decayed = [optimizer.uses_weight_decay(v) for v in model.trainable_variables]
    return state, decayed, int(optimizer.iterations)


if __name__ == "__main__":
    devices = keras.distribution.list_devices("cpu")
    for case in CASES:
        keras.distribution.set_distribution(None)
        one, decayed, iterations = fit(case)
        distribution = keras.distribution.DataParallel(devices=devices)
        keras.distribution.set_distribution(distribution)
        two, _, _ = fit(case)
        keras.distribution.set_distribution(None)
        print(json.dumps({
            "case": case,
            "devices": len(devices),
            "keys_match": sorted(one) == sorted(two),
            "max_difference": max(float(np.abs(one[k] - two[k]).max()) for k in one),
            "decayed": decayed,
            "iterations": iterations,
            "finite": all(bool(np.isfinite(v).all()) for v in two.values()),
        }), flush=True)
