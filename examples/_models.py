"""CIFAR-sized ResNets for the examples: pre-activation ResNet and Shake-Shake.

Both builders use the Keras 3 functional API and return a model that outputs
logits. Convolution and dense kernels can carry an L2 penalty
(`kernel_regularizer`), which is how the examples build the "Adam + L2"
baseline; the decoupled optimizers leave it at zero.

References:
    He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016
        (arXiv:1603.05027), for the pre-activation block.
    Gastaldi, "Shake-Shake regularization", 2017 (arXiv:1705.07485), for the
        26 2x64d model used by Loshchilov & Hutter (arXiv:1711.05101).
"""

import functools

import keras
from keras import layers, ops

# Keras' default 0.99 needs hundreds of steps to settle; short example runs
# would evaluate with stale moving statistics.
BATCH_NORM_MOMENTUM = 0.9


def _layer_factories(l2):
    """Conv2D / Dense / BatchNormalization factories sharing the regularizer.

    `l2` is the coefficient lambda' of the paper's L2 variant (the gradient
    gains `lambda' * theta`). `keras.regularizers.L2(c)` adds `c * sum(w**2)`
    to the loss, whose gradient is `2 * c * w`, hence the factor 1/2.
    """
    regularizer = keras.regularizers.L2(l2 / 2) if l2 else None
    conv = functools.partial(
        layers.Conv2D, kernel_size=3, padding="same", use_bias=False,
        kernel_initializer="he_normal", kernel_regularizer=regularizer)
    dense = functools.partial(layers.Dense, kernel_regularizer=regularizer)
    batch_norm = functools.partial(
        layers.BatchNormalization, momentum=BATCH_NORM_MOMENTUM)
    return conv, dense, batch_norm


def preact_resnet(input_shape=(32, 32, 3), num_classes=10, blocks_per_stage=1,
                  width=16, stages=3, l2=0.0):
    """Pre-activation ResNet: `stages` stages of `blocks_per_stage` blocks.

    Stage `i` has `width * 2**i` filters; every stage after the first halves
    the resolution in its first block. Each block is BN-ReLU-conv3x3-BN-ReLU-
    conv3x3 with an identity shortcut, or a 1x1 projection of the
    pre-activated input where the shape changes. `blocks_per_stage=1,
    width=16` gives about 78k parameters.
    """
    conv, dense, batch_norm = _layer_factories(l2)
    inputs = keras.Input(input_shape)
    x = conv(width)(inputs)
    for stage in range(stages):
        filters = width * 2**stage
        for block in range(blocks_per_stage):
            strides = 2 if stage > 0 and block == 0 else 1
            preactivated = layers.ReLU()(batch_norm()(x))
            shortcut = x
            if strides != 1 or x.shape[-1] != filters:
                shortcut = conv(filters, kernel_size=1, strides=strides)(
                    preactivated)
            y = conv(filters, strides=strides)(preactivated)
            y = layers.ReLU()(batch_norm()(y))
            y = conv(filters)(y)
            x = layers.Add()([shortcut, y])
    x = layers.ReLU()(batch_norm()(x))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = dense(num_classes)(x)
    name = f"preact_resnet_{stages}x{blocks_per_stage}_w{width}"
    return keras.Model(inputs, outputs, name=name)


class ShakeShake(layers.Layer):
    """Combine two residual branches as in Shake-Shake-Image (Gastaldi 2017).

    In training the output is `alpha * b1 + (1 - alpha) * b2` with a fresh
    `alpha ~ U(0, 1)` per sample, while gradients flow as if it had been
    `beta * b1 + (1 - beta) * b2` with an independent `beta ~ U(0, 1)`
    ("shake" forward and backward). The trick: compute the backward
    combination and add `stop_gradient(forward - backward)`. At inference
    the output is `0.5 * (b1 + b2)`.

    Args:
        seed: Optional integer seed for the layer's `SeedGenerator`.
            Defaults to `None` (drawn from the global Keras seed).
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        branch_1, branch_2 = inputs
        if not training:
            return 0.5 * (branch_1 + branch_2)
        shape = (ops.shape(branch_1)[0], 1, 1, 1)
        alpha = keras.random.uniform(
            shape, dtype=self.compute_dtype, seed=self.seed_generator)
        beta = keras.random.uniform(
            shape, dtype=self.compute_dtype, seed=self.seed_generator)
        forward = alpha * branch_1 + (1 - alpha) * branch_2
        backward = beta * branch_1 + (1 - beta) * branch_2
        return backward + ops.stop_gradient(forward - backward)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def _shake_shake_shortcut(x, filters, strides, conv, batch_norm):
    """Gastaldi's projection shortcut: two strided 1x1 convs, one shifted.

    The second path drops the first row and column and zero-pads the last,
    so the two half-width paths sample interleaved pixels.
    """
    x = layers.ReLU()(x)
    path_1 = layers.AveragePooling2D(pool_size=1, strides=strides)(x)
    path_1 = conv(filters // 2, kernel_size=1)(path_1)
    path_2 = layers.Cropping2D(((1, 0), (1, 0)))(x)
    path_2 = layers.ZeroPadding2D(((0, 1), (0, 1)))(path_2)
    path_2 = layers.AveragePooling2D(pool_size=1, strides=strides)(path_2)
    path_2 = conv(filters // 2, kernel_size=1)(path_2)
    return batch_norm()(layers.Concatenate()([path_1, path_2]))


def shake_shake_resnet(input_shape=(32, 32, 3), num_classes=10,
                       blocks_per_stage=4, width=64, l2=0.0):
    """Shake-Shake ResNet "26 2x`width`d" (for `blocks_per_stage=4`).

    A 16-filter conv3x3 stem, then 3 stages of widths `width`, `2 * width`,
    `4 * width`, each of `blocks_per_stage` blocks with two branches
    ReLU-conv3x3-BN-ReLU-conv3x3-BN joined by `ShakeShake`; then ReLU,
    global average pooling and a dense classifier. Depth is
    `2 + 3 * blocks_per_stage * 2` (26 for 4 blocks). The paper's 26 2x64d
    has about 11.7M parameters (26 2x32d: about 2.9M).
    """
    conv, dense, batch_norm = _layer_factories(l2)
    inputs = keras.Input(input_shape)
    x = batch_norm()(conv(16)(inputs))
    for stage in range(3):
        filters = width * 2**stage
        for block in range(blocks_per_stage):
            strides = 2 if stage > 0 and block == 0 else 1
            branches = []
            for _ in range(2):
                y = layers.ReLU()(x)
                y = batch_norm()(conv(filters, strides=strides)(y))
                y = layers.ReLU()(y)
                branches.append(batch_norm()(conv(filters)(y)))
            shortcut = x
            if strides != 1 or x.shape[-1] != filters:
                shortcut = _shake_shake_shortcut(
                    x, filters, strides, conv, batch_norm)
            x = layers.Add()([shortcut, ShakeShake()(branches)])
    x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = dense(num_classes)(x)
    depth = 2 + 3 * blocks_per_stage * 2
    return keras.Model(inputs, outputs, name=f"shake_shake_{depth}_2x{width}d")


ARCHS = {"preact_resnet": preact_resnet, "shake_shake": shake_shake_resnet}
# Blocks per stage and first-stage width of each architecture by default.
ARCH_DEFAULTS = {"preact_resnet": (1, 16), "shake_shake": (4, 64)}


def build_model(arch="preact_resnet", depth=None, width=None, l2=0.0):
    """Build a CIFAR-sized model (32x32x3 in, 10 logits out) by name.

    Args:
        arch: "preact_resnet" or "shake_shake". Defaults to "preact_resnet".
        depth: Blocks per stage. Defaults to 1 (preact) / 4 (shake_shake).
        width: Filters of the first stage. Defaults to 16 / 64.
        l2: L2 coefficient lambda' on kernels (the Adam + L2 baseline).
            Defaults to 0.
    """
    if arch not in ARCHS:
        raise ValueError(f"Argument `arch` must be one of {sorted(ARCHS)}. "
                         f"Received: arch={arch!r}")
    default_depth, default_width = ARCH_DEFAULTS[arch]
    return ARCHS[arch](blocks_per_stage=depth or default_depth,
                       width=width or default_width, l2=l2)
