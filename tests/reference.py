"""The paper as plain NumPy loops: the spec the optimizers are tested against.

Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019):
Algorithm 1 (SGD with momentum / SGDW), Algorithm 2 (Adam / AdamW), the
SGDR schedule (Section 5 of ../shared/PAPER.md) and normalized decay.
Deliberately obvious: one step at a time, no closed forms, no fusing.
Cycle positions use exact fractions so that the reference itself cannot
put a step in the wrong cycle.
"""

import math
from fractions import Fraction

import numpy as np


def schedule_reference(num_steps, first_cycle_steps, t_mul=2.0, m_mul=1.0,
                       min_lr_ratio=0.0, warmup_steps=0, cycle_limit=None,
                       warmup_start_ratio=0.0):
    """Walks steps 0..num_steps-1; returns (eta, cycle index, T_i) lists.

    `eta_t = r + (1 - r) * m_mul**i * 0.5 * (1 + cos(pi T_cur/T_i))` with
    `r = min_lr_ratio`; `T_cur` grows by one per step; when it reaches `T_i`
    the run restarts: `T_cur -= T_i`, `T_i *= t_mul`, `i += 1`, unless that
    was cycle number `cycle_limit`: then eta stays at `r` (the last cycle,
    over). Warm-up: `eta = s + (1 - s) * step / W`, `s = warmup_start_ratio`.
    """
    t_mul = Fraction(t_mul)
    t_i, t_cur, index = Fraction(first_cycle_steps), Fraction(0), 0
    etas, cycles, lengths = [], [], []
    for step in range(num_steps):
        if step < warmup_steps:
            etas.append(warmup_start_ratio + (1 - warmup_start_ratio) * step / warmup_steps)
            cycles.append(0)
            lengths.append(float(t_i))
            continue
        exhausted = t_mul < 1 and t_cur >= t_i / (1 - t_mul)
        while not exhausted and t_cur >= t_i:
            if cycle_limit is not None and index + 1 == cycle_limit:
                exhausted = True
                break
            t_cur -= t_i
            t_i *= t_mul
            index += 1
        fraction = 1.0 if exhausted else float(t_cur / t_i)
        cosine = 0.5 * m_mul**index * (1 + math.cos(math.pi * fraction))
        etas.append(min_lr_ratio + (1 - min_lr_ratio) * cosine)
        cycles.append(index)
        lengths.append(float(t_i))
        t_cur += 1
    return etas, cycles, lengths


def cycle_reference(step, first_cycle_steps, t_mul=2.0):
    """(cycle index, T_cur / T_i) of one far-away step, walking cycle by cycle."""
    if t_mul == 1:  # equal cycles: walking 2**31 of them would take hours
        return step // first_cycle_steps, step % first_cycle_steps / first_cycle_steps
    t_mul = Fraction(t_mul)
    t_i, start, index = Fraction(first_cycle_steps), Fraction(0), 0
    while step >= start + t_i:
        start += t_i
        t_i *= t_mul
        index += 1
    return index, float((step - start) / t_i)


def restart_reference(count, first_cycle_steps, t_mul=2.0, warmup_steps=0):
    """First integer step of cycles 1..count (= ends of cycles 0..count-1)."""
    t_mul = Fraction(t_mul)
    t_i, end, ends = Fraction(first_cycle_steps), Fraction(0), []
    for _ in range(count):
        end += t_i
        t_i *= t_mul
        ends.append(warmup_steps + math.ceil(end))
    return ends


def normalized_lambdas(lambda_norm, lengths):
    """lambda_t = lambda_norm / sqrt(T) for the run length T of each step."""
    return [lambda_norm / math.sqrt(length) for length in lengths]


def adamw_reference(theta, grads, etas, lambdas, alpha, beta_1=0.9,
                    beta_2=0.999, epsilon=1e-8, amsgrad=False, l2=0.0):
    """Algorithm 2. Returns theta after every step, in theta's dtype.

    `l2` adds `l2 * theta` to the gradient (Adam + L2); `lambdas` is the
    decoupled decay (AdamW). For the Keras/PyTorch convention pass
    `lambdas = [alpha * lam_keras] * n`.
    """
    dtype = theta.dtype
    m, v, v_max = np.zeros_like(theta), np.zeros_like(theta), np.zeros_like(theta)
    history = []
    for t, (g, eta, lam) in enumerate(zip(grads, etas, lambdas), start=1):
        g = g.astype(dtype) + l2 * theta
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        v_max = np.maximum(v_max, v)
        m_hat = m / (1 - beta_1**t)
        v_hat = (v_max if amsgrad else v) / (1 - beta_2**t)
        theta = theta - eta * (alpha * m_hat / (np.sqrt(v_hat) + epsilon)
                               + lam * theta)
        history.append(theta.astype(dtype))
    return history


def sgdw_reference(theta, grads, etas, lambdas, alpha, momentum=0.9,
                   nesterov=False, l2=0.0):
    """Algorithm 1 (the rate inside the momentum buffer). Returns history."""
    dtype = theta.dtype
    m = np.zeros_like(theta)
    history = []
    for g, eta, lam in zip(grads, etas, lambdas):
        g = g.astype(dtype) + l2 * theta
        m = momentum * m + eta * alpha * g
        step = momentum * m + eta * alpha * g if nesterov else m
        theta = theta - step - eta * lam * theta
        history.append(theta.astype(dtype))
    return history
