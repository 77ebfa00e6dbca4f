"""AdamW (Algorithm 2 of Loshchilov & Hutter) and AdamWR."""

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
class AdamW(DecoupledWeightDecay):
    """Adam with decoupled weight decay, exactly as in the paper.

    Algorithm 2 of Loshchilov & Hutter (2019). At update t (1-based) with
    gradient `g_t`, base rate `alpha` and schedule multiplier `eta_t`:

    ```
    m_t     = beta_1 * m_{t-1} + (1 - beta_1) * g_t
    v_t     = beta_2 * v_{t-1} + (1 - beta_2) * g_t**2
    m_hat   = m_t / (1 - beta_1**t)
    v_hat   = v_t / (1 - beta_2**t)          # v_max_t with amsgrad=True
    theta_t = theta_{t-1} - eta_t * (alpha * m_hat / (sqrt(v_hat) + epsilon)
                                     + lambda_t * theta_{t-1})
    ```

    `epsilon` sits outside the square root of the bias-corrected `v_hat`
    (Keras' own Adam folds the correction into the step size instead). The
    decay uses `theta_{t-1}` and is fused into the same update.

    float16/bfloat16 variables keep their slots `m`, `v` in float32 (Keras
    keeps them in the variable's dtype, where `(1 - beta_2) * g**2`
    underflows for `|g|` below about 7e-3 and every step becomes the
    largest one) and are updated in float32, then rounded once: they
    follow the float32 trajectory to the variable's own precision. Memory:
    8 bytes of slots per float16 weight instead of 4.

    Decay conventions (`decay_scaling`):

    * `"schedule"` (default, the paper): the decay is `eta_t * lambda_t`
      with `eta_t = lr_t / base_learning_rate`. It follows a schedule, a
      manual change of a float learning rate or `ReduceLROnPlateau`, but
      does not scale with `alpha` itself, so rate and decay tune separately.
    * `"learning_rate"` (Keras/PyTorch `AdamW`): the decay is
      `lr_t * lambda_t`. Convert with `lambda_paper = alpha * lambda_keras`.

    `lambda_t` is `weight_decay`, or with normalized decay `lambda_norm /
    sqrt(T)`: `T` is the length in steps of the current restart cycle when
    the learning rate is a `CosineWarmRestarts`, else `total_steps`.

    Args:
        learning_rate: A float > 0, a `LearningRateSchedule` (a
            `CosineWarmRestarts` gives SGDR-style restarts) or a callable
            (which needs `base_learning_rate` unless
            `decay_scaling="learning_rate"`). Defaults to `0.001`.
        weight_decay: `lambda`, a float >= 0. Defaults to `1e-4` (paper
            convention) unless `normalized_weight_decay` is given. A value
            above 1e-3 with `decay_scaling="schedule"` warns
            (`keras_adamwr.DecayConventionWarning`): it is probably a
            Keras/PyTorch value, about `1 / learning_rate` times too strong
            here. A decay factor `c_t >= 1` at any step (e.g. a
            `base_learning_rate` below the rate) is refused.
        beta_1: Decay of the first moment, in [0, 1). Defaults to `0.9`.
        beta_2: Decay of the second moment, in [0, 1). Defaults to `0.999`.
        epsilon: Added to `sqrt(v_hat)`, >= 0. Defaults to `1e-8`.
        amsgrad: Use the running maximum of `v_t` (AMSGrad, Reddi et al.
            2018). Defaults to `False`.
        normalized_weight_decay: `lambda_norm` (the paper's good values on
            CIFAR-10: 0.025-0.05 at batch size 128); excludes
            `weight_decay`. Defaults to `None`.
        total_steps: Weight updates in the run, for normalized decay with a
            learning rate that is not a `CosineWarmRestarts`. Defaults to
            `None`.
        decay_scaling: `"schedule"` or `"learning_rate"`, see above.
            Defaults to `"schedule"`.
        exclude_from_weight_decay: Regular expressions matched with
            `re.search` against each `variable.name`, as in Keras (e.g.
            `["bias", "gamma", "beta"]`), or against `variable.path` for a
            pattern containing "/" (e.g. `["head/"]`, a whole layer);
            matching variables are not decayed. Stored in the config, so
            it survives saving (configs of 0.4.0 and older, which matched
            every pattern against the path, keep that meaning). The Keras method
            `exclude_from_weight_decay(var_list, var_names)` works too (not
            saved). Defaults to `None`.
        base_learning_rate: `alpha`, the rate at which `eta_t = 1`. Defaults
            to the float learning rate, or the peak of a known schedule.
        jit_compile: TensorFlow backend: run the update of all variables of
            a step as one XLA computation, the same update code fused into
            about one pass over each tensor instead of one per operation
            (as Keras 2 optimizers did on GPU). Not used on JAX (the train
            step is compiled already) or torch, under a `tf.distribute`
            strategy, or on Apple silicon. Defaults to `True`.
        **kwargs: Keras optimizer arguments: `clipnorm`, `clipvalue`,
            `global_clipnorm`, `use_ema`, `ema_momentum`,
            `ema_overwrite_frequency`, `loss_scale_factor`,
            `gradient_accumulation_steps` (the schedule, `eta_t` and the
            restarts then count weight updates, not micro-batches).
        name: Optimizer name. Defaults to `None`: a unique name made
            from the class name, as Keras does (`"adam_w"`, `"adam_w_1"`, ...).

    Examples:

        >>> model.compile(optimizer=keras_adamwr.AdamW(1e-3, weight_decay=1e-4),
        ...               loss="sparse_categorical_crossentropy")

    References:
        Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR
        2019, https://arxiv.org/abs/1711.05101; Kingma & Ba, "Adam", ICLR
        2015, https://arxiv.org/abs/1412.6980.
    """

    # Layout tag of the saved state, and the 0.2.0 default names whose
    # untagged state is accepted (see `_check_untagged_state`).
    _STATE_FAMILY = "AdamW"
    _HAS_EPSILON = True
    _UNTAGGED_NAMES = ("adamw", "adamwr")

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=None,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        amsgrad=False,
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
        self.beta_1 = check_number("beta_1", beta_1, 0, 1, True, False)
        self.beta_2 = check_number("beta_2", beta_2, 0, 1, True, False)
        self.epsilon = check_number("epsilon", epsilon, 0)
        self.amsgrad = check_bool("amsgrad", amsgrad)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # Slot order is part of the saved format: never reorder.
        self._momentums, self._velocities = self.add_slots(var_list, ["momentum", "velocity"])
        if self.amsgrad:
            self._velocity_hats = self.add_slots(var_list, "velocity_hat")
        self._restore_pending_state()

    def _update_scalars(self, learning_rate, step, dtype):
        # alpha * m_hat / (sqrt(v_hat) + eps)
        #   == step_size * m / (sqrt(v) + eps * sqrt(1 - beta_2**t)), exactly.
        t = ops.cast(step + 1, dtype)
        correction_1 = 1 - ops.power(ops.convert_to_tensor(self.beta_1, dtype), t)
        root_correction_2 = ops.sqrt(1 - ops.power(ops.convert_to_tensor(self.beta_2, dtype), t))
        return {
            "step_size": learning_rate * root_correction_2 / correction_1,
            "epsilon": self.epsilon * root_correction_2,
        }

    def update_step(self, gradient, variable, learning_rate):
        dtype = compute_dtype(variable)
        scalars = self._step_scalars(learning_rate, dtype)
        index = self._get_variable_index(variable)
        gradient = ops.cast(gradient, dtype)
        m = self._momentums[index]
        v = self._velocities[index]
        # In place, as Keras' Adam: m += (g - m)(1 - beta_1) is
        # beta_1 m + (1 - beta_1) g with fewer full-tensor passes.
        m_increment = (gradient - ops.cast(m, dtype)) * (1 - self.beta_1)
        v_increment = (ops.square(gradient) - ops.cast(v, dtype)) * (1 - self.beta_2)
        self.assign_add(m, ops.cast(m_increment, m.dtype))
        self.assign_add(v, ops.cast(v_increment, v.dtype))
        if self.amsgrad:
            v_hat = self._velocity_hats[index]
            # Not ops.maximum: on torch it computes float64 in float32.
            new, old = ops.cast(v, dtype), ops.cast(v_hat, dtype)
            self.assign(v_hat, ops.cast(ops.where(ops.less(new, old), old, new), v_hat.dtype))
            v = v_hat
        m, v = ops.cast(m, dtype), ops.cast(v, dtype)
        step = scalars["step_size"] * m / (ops.sqrt(v) + scalars["epsilon"])
        self._update_variable(variable, step, scalars, index, dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "amsgrad": self.amsgrad,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_adamwr")
class AdamWR(AdamW):
    """AdamW with cosine warm restarts and per-restart normalized decay.

    `AdamW(learning_rate=CosineWarmRestarts(learning_rate, ...),
    normalized_weight_decay=...)` in one object: the rate restarts after
    `T_0`, `T_0 * (1 + t_mul)`, ... updates (or epochs), and `lambda_t =
    lambda_norm / sqrt(T_i)` changes at every restart (`T_i` the current
    cycle length in steps). `optimizer.schedule` is the schedule, with
    `restart_steps(n)` and `cycle_end_epochs(budget)`.

    Args:
        learning_rate: Peak rate `alpha` of the paper, a float > 0.
            Defaults to `0.001`.
        first_cycle_steps: Length `T_0` of the first cycle in weight
            updates, an integer >= 1. Give it or `first_cycle_epochs`.
        t_mul: Cycle length factor, as in `CosineWarmRestarts`. Defaults
            to `2.0`.
        m_mul: Peak factor per restart, in [0, 1]. Defaults to `1.0`.
        min_lr_ratio: Floor as a fraction of the peak, in [0, 1] (Keras'
            `alpha`; `alpha=` is refused here, as it could also mean
            `learning_rate`). Defaults to `0.0`.
        warmup_steps: Linear warm-up steps. Defaults to `0`.
        weight_decay: A raw `lambda` instead of normalized decay. Defaults
            to `None`.
        normalized_weight_decay: `lambda_norm`. Defaults to `0.025` unless
            `weight_decay` is given.
        name: Optimizer name. Defaults to `None` (a unique name made by
            Keras from the class name).
        steps_per_epoch: Weight updates per epoch (see
            `keras_adamwr.batches_per_epoch`), for the `*_epochs`
            arguments. Defaults to `None`.
        first_cycle_epochs: `T_0` in epochs instead of steps. Defaults to
            `None`.
        warmup_epochs: Warm-up in epochs instead of steps. Defaults to
            `None`.
        cycle_limit: Number of cycles; after them the rate (and the decay)
            stays at the floor. Defaults to `None` (no limit).
        warmup_start_ratio: First warm-up rate as a fraction of the peak.
            Defaults to `0.0`.
        **kwargs: The other `AdamW` arguments (`beta_1`, `beta_2`,
            `epsilon`, `amsgrad`, `decay_scaling`,
            `exclude_from_weight_decay`, `jit_compile`) and Keras optimizer
            arguments.

    Examples:

        >>> steps_per_epoch = keras_adamwr.batches_per_epoch(50_000, 128)  # 391
        >>> optimizer = keras_adamwr.AdamWR(
        ...     1e-3, first_cycle_epochs=1, steps_per_epoch=steps_per_epoch)
        >>> optimizer.schedule.cycle_end_epochs(40)  # restarts after epochs
        [1.0, 3.0, 7.0, 15.0, 31.0]
        >>> model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")

    References:
        Loshchilov & Hutter, https://arxiv.org/abs/1711.05101 (AdamWR) and
        https://arxiv.org/abs/1608.03983 (SGDR).
    """

    def __init__(
        self,
        learning_rate=0.001,
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
