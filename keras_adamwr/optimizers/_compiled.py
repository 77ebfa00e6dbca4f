"""The update of a step as XLA computations, on TensorFlow.

TensorFlow's graph executor runs every elementwise op of `update_step` as
its own kernel over whole tensors, so an Adam step reads and writes each
parameter-sized tensor about 14 times. Compiled by XLA, the same
`keras.ops` code fuses into about one pass per variable (see
`docs/performance.md`). Keras 2 optimizers did this on GPU
(`jit_compile=True`); Keras 3 only compiles whole train steps, and not on
CPU by default. Here the per-variable update of one step, and nothing else
(gradient clipping, accumulation, EMA and the iteration counter stay with
Keras), runs as `tf.function(jit_compile=True)`: one per chunk of at most
64 variables, for steps of at most 512 variables and at most 4 sets of
variables per optimizer; other steps run the same code as TensorFlow
kernels (see `compiled_functions`).

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
    """Whether this step's update may run as XLA functions (see
    `compiled_functions` for the bounds)."""
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


# Bounds on what is compiled (issue 10): XLA's compile time and memory grow
# with the number of variables in one function, and every new set of
# variables with gradients would get (and keep) a function of its own.
MAX_VARIABLES_PER_FUNCTION = 64  # a step's variables go in chunks of this
MAX_COMPILED_VARIABLES = 512  # more variables in a step: kernel path
MAX_SUBSETS = 4  # sets of variables with functions; others: kernel path


def compiled_functions(optimizer, update, variables):
    """The XLA functions for a step over `variables`, or None.

    One function per chunk of at most `MAX_VARIABLES_PER_FUNCTION`
    consecutive variables, made once per set of variables and kept in the
    optimizer's untracked scratch (never saved). None (run the kernel path)
    for a step over more than `MAX_COMPILED_VARIABLES` variables (many small
    variables: compiling costs more than fusing saves, and the compile time
    grows with their number) and for a new set of variables once
    `MAX_SUBSETS` sets have functions (an eager loop whose variables with
    gradients change would otherwise compile and keep one function per set).
    """
    key = tuple(optimizer._get_variable_index(v) for v in variables)
    compiled = optimizer._scratch.compiled
    functions = compiled.get(key)
    if functions is not None:
        return functions
    if len(key) > MAX_COMPILED_VARIABLES or len(compiled) >= MAX_SUBSETS:
        return None
    import tensorflow as tf

    def chunk_step(chunk):
        def step(grads, learning_rate):
            if learning_rate is None:  # a schedule: evaluated here
                learning_rate = optimizer.learning_rate
            update(grads, chunk, learning_rate)

        return tf.function(step, jit_compile=True, autograph=False)

    size = MAX_VARIABLES_PER_FUNCTION
    functions = compiled[key] = [
        (slice(start, start + size), chunk_step(list(variables[start:start + size])))
        for start in range(0, len(variables), size)
    ]
    return functions


def compiled_update_step(optimizer, update, grads, variables, learning_rate):
    """Runs `update(grads, variables, learning_rate)` as XLA functions.

    Returns False, having done nothing, where `compiled_functions` gives
    none: the caller runs the kernel path. A `LearningRateSchedule` (a
    function of `iterations` only) is evaluated again inside each function,
    so that `lr_t` and the decay's `eta_t` come from the same computation
    (XLA's `cos` may differ from TensorFlow's in the last bit); a float or
    callable learning rate is passed in as Keras evaluated it, so a callable
    may change between calls. Each function is traced once per caller
    graph. Gradients are dense (see `dense_gradients`), so XLA sees the
    variables' static shapes and compiles once.
    """
    import tensorflow as tf

    functions = compiled_functions(optimizer, update, variables)
    if functions is None:
        return False
    if isinstance(optimizer._learning_rate, _Schedule):
        learning_rate = None  # Keras' evaluation outside is not used
    elif isinstance(learning_rate, (int, float)):  # from a callable: exact
        learning_rate = tf.constant(learning_rate, "float64")
    else:
        learning_rate = tf.convert_to_tensor(learning_rate)
    grads = list(grads)
    for chunk, function in functions:
        function(grads[chunk], learning_rate)
        # The per-step scalars were traced inside `step`: never reuse them.
        optimizer._scratch.entries.clear()
    return True
