"""The whole update of a step as one XLA computation, on TensorFlow.

TensorFlow's graph executor runs every elementwise op of `update_step` as
its own kernel over whole tensors, so an Adam step reads and writes each
parameter-sized tensor about 14 times. Compiled by XLA, the same
`keras.ops` code fuses into about one pass per variable (see
`docs/performance.md`). Keras 2 optimizers did this on GPU
(`jit_compile=True`); Keras 3 only compiles whole train steps, and not on
CPU by default. Here the per-variable update of one step, and nothing else
(gradient clipping, accumulation, EMA and the iteration counter stay with
Keras), runs as one `tf.function(jit_compile=True)`.

The update code is unchanged: the same `update_step`, traced into an XLA
function instead of the caller's graph. Inside another XLA function (a
model compiled with `jit_compile=True`) the call is inlined. It is not
used on JAX and torch (JAX compiles the train step already), under a
`tf.distribute` strategy (whose per-replica updates go through Keras'
merge call), or on Apple silicon, where Keras too falls back from XLA.
"""

import platform

import keras

_Schedule = keras.optimizers.schedules.LearningRateSchedule


def xla_supported():
    """False where Keras falls back from XLA itself (Apple silicon)."""
    return not (platform.system() == "Darwin" and "arm" in platform.processor().lower())


def use_compiled_update(optimizer):
    """Whether this step's update runs as one XLA function."""
    if not optimizer.jit_compile or keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not tf.distribute.has_strategy() and xla_supported()


def dense_gradients(grads):
    """`tf.IndexedSlices` gradients (embeddings) as dense tensors.

    Adam's update is not linear in `g`: with repeated indices (a token twice
    in a batch) Keras' `ops.square` of the slices squares each part before
    they are summed, so `v` gets `sum(g_i**2)` instead of `(sum g_i)**2`
    (Keras' own Adam does this). Made dense, `g` is the gradient. The
    update is dense anyway: `m` and `v` decay everywhere.
    """
    if keras.backend.backend() != "tensorflow":
        return grads
    import tensorflow as tf

    return [
        tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads
    ]


def compiled_update_step(optimizer, update, grads, variables, learning_rate):
    """Runs `update(grads, variables, learning_rate)` as one XLA function.

    A `LearningRateSchedule` (a function of `iterations` only) is evaluated
    again inside the function, so that `lr_t` and the decay's `eta_t` come
    from the same computation (XLA's `cos` may differ from TensorFlow's in
    the last bit); a float or callable learning rate is passed in as Keras
    evaluated it, so a callable may change between calls. The function is
    made once per set of variables (kept in the optimizer's untracked
    scratch, so it is never saved) and traced once per caller graph.
    Gradients are dense (see `dense_gradients`), so XLA sees the variables'
    static shapes and compiles once.
    """
    import tensorflow as tf

    key = tuple(optimizer._get_variable_index(v) for v in variables)
    function = optimizer._scratch.compiled.get(key)
    if function is None:

        def step(grads, learning_rate):
            if learning_rate is None:  # a schedule: evaluated here
                learning_rate = optimizer.learning_rate
            update(grads, variables, learning_rate)

        function = tf.function(step, jit_compile=True, autograph=False)
        optimizer._scratch.compiled[key] = function
    if isinstance(optimizer._learning_rate, _Schedule):
        learning_rate = None  # Keras' evaluation outside is not used
    elif isinstance(learning_rate, (int, float)):  # from a callable: exact
        learning_rate = tf.constant(learning_rate, "float64")
    else:
        learning_rate = tf.convert_to_tensor(learning_rate)
    function(grads, learning_rate)
    # The per-step scalars were traced inside `step`: never reuse them.
    optimizer._scratch.entries.clear()
