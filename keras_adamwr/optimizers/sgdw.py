"""SGDW (Algorithm 1 of Loshchilov & Hutter) and SGDWR."""

import keras
from keras import ops

from keras_adamwr._checks import check_bool
from keras_adamwr._checks import check_number
from keras_adamwr.optimizers.base import DecoupledWeightDecay
from keras_adamwr.optimizers.base import compute_dtype
from keras_adamwr.optimizers.base import restart_arguments
from keras_adamwr.optimizers.base import restart_config
from keras_adamwr.optimizers.base import restart_from_config


@keras.saving.register_keras_serializable(package="keras_adamwr")
class SGDW(DecoupledWeightDecay):
    """SGD with momentum and decoupled weight decay, as in the paper.

    Algorithm 1 of Loshchilov & Hutter (2019). At update t with gradient
    `g_t`, base rate `alpha`, schedule multiplier `eta_t` and
    `lr_t = eta_t * alpha`:

    ```
    m_t     = momentum * m_{t-1} + lr_t * g_t      # rate inside the buffer
    theta_t = theta_{t-1} - m_t - eta_t * lambda_t * theta_{t-1}
    ```

    With `nesterov=True` the step is `momentum * m_t + lr_t * g_t` instead
    of `m_t`; with `momentum=0` it is `lr_t * g_t` and no buffer is kept.
    The decay conventions, normalized decay and exclusions are those of
    `AdamW` (`"learning_rate"` scaling: `lr_t * lambda_t`), and so is the
    momentum buffer of float16/bfloat16 variables: float32 (4 bytes per
    weight instead of 2), where `lr_t * g_t` does not underflow.

    Args:
        learning_rate: A float > 0, a `LearningRateSchedule` or a callable.
            Defaults to `0.01`.
        momentum: `beta_1` of the paper, in [0, 1). Defaults to `0.9`.
        nesterov: Nesterov momentum. Defaults to `False`.
        weight_decay: `lambda`, a float >= 0. Defaults to `1e-4` (paper
            convention) unless `normalized_weight_decay` is given.
        normalized_weight_decay: `lambda_norm`, as in `AdamW`. Defaults to
            `None`.
        total_steps: Run length for normalized decay without restarts, as
            in `AdamW`. Defaults to `None`.
        decay_scaling: `"schedule"` (paper) or `"learning_rate"`
            (Keras/PyTorch), as in `AdamW`. Defaults to `"schedule"`.
        exclude_from_weight_decay: Regular expressions matched against
            `variable.name` (`variable.path` if they contain "/"), as in
            `AdamW`. Defaults to `None`.
        base_learning_rate: `alpha`, as in `AdamW`. Defaults to the float
            learning rate or the peak of a known schedule.
        jit_compile: One XLA computation per step on TensorFlow, as in
            `AdamW`. Defaults to `True`.
        name: Optimizer name. Defaults to `None`: a unique name made
            from the class name, as Keras does (`"sgdw"`, `"sgdw_1"`, ...).
        **kwargs: Keras optimizer arguments (`clipnorm`, `clipvalue`,
            `global_clipnorm`, `use_ema`, `ema_momentum`,
            `loss_scale_factor`, `gradient_accumulation_steps`).

    Examples:

        >>> optimizer = keras_adamwr.SGDW(0.05, momentum=0.9, weight_decay=5e-4)

    References:
        Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR
        2019, https://arxiv.org/abs/1711.05101.
    """

    # Layout tag of the saved state, and the 0.2.0 default names whose
    # untagged state is accepted (see `_check_untagged_state`).
    _STATE_FAMILY = "SGDW"
    _UNTAGGED_NAMES = ("sgdw", "sgdwr")

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.9,
        nesterov=False,
        weight_decay=None,
        normalized_weight_decay=None,
        total_steps=None,
        decay_scaling="schedule",
        exclude_from_weight_decay=None,
        base_learning_rate=None,
        jit_compile=True,
        name=None,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            normalized_weight_decay=normalized_weight_decay,
            total_steps=total_steps,
            decay_scaling=decay_scaling,
            exclude_from_weight_decay=exclude_from_weight_decay,
            base_learning_rate=base_learning_rate,
            default_weight_decay=1e-4,
            jit_compile=jit_compile,
            name=name,
            **kwargs,
        )
        self.momentum = check_number("momentum", momentum, 0, 1, True, False)
        self.nesterov = check_bool("nesterov", nesterov)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.momentums = []
        if self.momentum != 0:
            self.momentums = self.add_slots(var_list, "momentum")
        self._restore_pending_state()

    def _update_scalars(self, learning_rate, step, dtype):
        return {"learning_rate": learning_rate}

    def update_step(self, gradient, variable, learning_rate):
        dtype = compute_dtype(variable)
        scalars = self._step_scalars(learning_rate, dtype)
        index = self._get_variable_index(variable)
        step = scalars["learning_rate"] * ops.cast(gradient, dtype)
        if self.momentum != 0:
            m = self.momentums[index]
            new_m = self.momentum * ops.cast(m, dtype) + step
            self.assign(m, ops.cast(new_m, m.dtype))
            step = self.momentum * new_m + step if self.nesterov else new_m
        self._update_variable(variable, step, scalars, index, dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config


@keras.saving.register_keras_serializable(package="keras_adamwr")
class SGDWR(SGDW):
    """SGDW with cosine warm restarts and per-restart normalized decay.

    The SGDR schedule of the paper (`CosineWarmRestarts`) built in, with
    `lambda_t = lambda_norm / sqrt(T_i)` changing at every restart. See
    `AdamWR` for the restart arguments.

    Args:
        learning_rate: Peak rate, a float > 0. Defaults to `0.05`.
        first_cycle_steps: First cycle length in updates. Give it or
            `first_cycle_epochs`.
        t_mul: Cycle length factor, as in `CosineWarmRestarts`. Defaults
            to `2.0`.
        m_mul: Peak factor per restart, in [0, 1]. Defaults to `1.0`.
        min_lr_ratio: Floor as a fraction of the peak (`alpha=` is
            refused, as in `AdamWR`). Defaults to `0.0`.
        warmup_steps: Linear warm-up steps. Defaults to `0`.
        weight_decay: A raw `lambda` instead. Defaults to `None`.
        normalized_weight_decay: Defaults to `0.025` unless `weight_decay`
            is given.
        name: Optimizer name. Defaults to `None` (a unique name made by
            Keras from the class name).
        steps_per_epoch: Weight updates per epoch, for the `*_epochs`
            arguments, as in `AdamWR`. Defaults to `None`.
        first_cycle_epochs: Length of the first cycle in epochs, as in
            `AdamWR`. Defaults to `None`.
        warmup_epochs: Warm-up in epochs, as in `AdamWR`. Defaults to
            `None`.
        cycle_limit: Number of cycles, then the floor, as in `AdamWR`.
            Defaults to `None` (no limit).
        warmup_start_ratio: First warm-up rate as a fraction of the peak,
            as in `AdamWR`. Defaults to `0.0`.
        **kwargs: The other `SGDW` and Keras optimizer arguments.

    Examples:

        >>> optimizer = keras_adamwr.SGDWR(0.05, first_cycle_epochs=10,
        ...                                steps_per_epoch=391)

    References:
        https://arxiv.org/abs/1711.05101, https://arxiv.org/abs/1608.03983.
    """

    def __init__(
        self,
        learning_rate=0.05,
        first_cycle_steps=None,
        t_mul=2.0,
        m_mul=1.0,
        min_lr_ratio=0.0,
        warmup_steps=None,
        weight_decay=None,
        normalized_weight_decay=None,
        name=None,
        steps_per_epoch=None,
        first_cycle_epochs=None,
        warmup_epochs=None,
        cycle_limit=None,
        warmup_start_ratio=0.0,
        **kwargs,
    ):
        schedule, normalized_weight_decay = restart_arguments(
            learning_rate,
            dict(first_cycle_steps=first_cycle_steps, t_mul=t_mul, m_mul=m_mul,
                 min_lr_ratio=min_lr_ratio, warmup_steps=warmup_steps,
                 steps_per_epoch=steps_per_epoch,
                 first_cycle_epochs=first_cycle_epochs,
                 warmup_epochs=warmup_epochs, cycle_limit=cycle_limit,
                 warmup_start_ratio=warmup_start_ratio),
            weight_decay, normalized_weight_decay, kwargs, self,
        )
        super().__init__(
            learning_rate=schedule,
            weight_decay=weight_decay,
            normalized_weight_decay=normalized_weight_decay,
            name=name,
            **kwargs,
        )

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return super().from_config(restart_from_config(config), custom_objects)

    def get_config(self):
        return restart_config(super().get_config(), self.schedule)
