"""A candidate rewrite of `AdamW.update_step`, as a subclass, to measure.

Not part of the library; `optimizer_step.py` times it beside the library's
own AdamWR so the docs can state what the change would buy.

`FusedAdamWR`: on the TensorFlow backend, the Adam part of the update is
TensorFlow's fused `ResourceApplyAdam` kernel (one pass over g, m, v and
theta) with `lr = step_size`, `beta1_power = beta2_power = 0` and
`epsilon = epsilon * sqrt(1 - beta_2**t)`, the per-step scalars the library
already computes, which makes it exactly the library's update; the decay is
one in-place `theta -= c_t * theta` before it. Other backends, AMSGrad,
sparse gradients and float16/bfloat16 variables (which the library updates
in float32) fall back to the library's update.

`check_equivalence` measures the largest difference from the library's
AdamWR after a few hundred steps.
"""

import keras
import numpy as np
import tensorflow as tf

import keras_adamwr


def _handle(variable):
    """The resource handle of a tf.Variable or a Keras variable on TF."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


class FusedAdamWR(keras_adamwr.AdamWR):
    """AdamWR whose Adam part is TF's fused `ResourceApplyAdam` kernel."""

    def update_step(self, gradient, variable, learning_rate):
        dtype = keras.backend.standardize_dtype(variable.dtype)
        if (keras.backend.backend() != "tensorflow" or self.amsgrad
                or isinstance(gradient, tf.IndexedSlices)
                or dtype not in ("float32", "float64")):
            return super().update_step(gradient, variable, learning_rate)
        scalars = self._step_scalars(learning_rate, dtype)
        index = self._get_variable_index(variable)
        if index in self._decayed_indices:
            self.assign_sub(variable, scalars["decay"] * variable)  # from theta_{t-1}
        zero = tf.zeros((), dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=zero,  # lr_t = lr * sqrt(1 - 0) / (1 - 0) = step_size
            beta2_power=zero,
            lr=scalars["step_size"],
            beta1=tf.constant(self.beta_1, dtype),
            beta2=tf.constant(self.beta_2, dtype),
            epsilon=scalars["epsilon"],
            grad=tf.cast(gradient, dtype),
            use_locking=False,
            use_nesterov=False,
        )


PROPOSALS = {
    "fused": (
        "proposal (`benchmarks/proposals.py`): AdamWR with TF's fused "
        "`ResourceApplyAdam` kernel + one in-place decay",
        lambda: FusedAdamWR(1e-3, first_cycle_steps=1000,
                            normalized_weight_decay=0.025)),
}


def _compiled_apply(optimizer, variables):
    return tf.function(lambda grads: optimizer.apply(grads, variables))


def check_equivalence(steps=300, seed=0):
    """Largest |proposal - AdamWR| / max|theta| over `steps` float32 updates."""
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((3, 64, 65), dtype=np.float32)
    grads = rng.standard_normal((steps, 3, 64, 65), dtype=np.float32)
    kwargs = dict(learning_rate=1e-2, first_cycle_steps=50, t_mul=2.0,
                  normalized_weight_decay=0.5, exclude_from_weight_decay=["kept"])
    results = {}
    for name, cls in (("adamwr", keras_adamwr.AdamWR), ("fused", FusedAdamWR)):
        variables = [keras.Variable(theta[0], name="decayed_a"),
                     keras.Variable(theta[1], name="decayed_b"),
                     keras.Variable(theta[2], name="kept")]
        optimizer = cls(**kwargs)
        step = _compiled_apply(optimizer, variables)
        for t in range(steps):
            step([tf.constant(g) for g in grads[t]])
        results[name] = np.stack([keras.ops.convert_to_numpy(v) for v in variables])
    scale = float(np.abs(results["adamwr"]).max())
    return {name: float(np.abs(results[name] - results["adamwr"]).max() / scale)
            for name in PROPOSALS}
