"""optax.adamw (JAX) and torch.optim.AdamW (foreach / fused) on the same sizes.

Optional: these frameworks are not dependencies of keras_adamwr and the
benchmarks never install them; where one is missing the comparison is
skipped with a note. With JAX and optax importable, this process runs Keras
on the JAX backend and times, side by side, one jitted step (buffers
donated, so updates are in place) of

* `optax.adamw(1e-3, weight_decay=0.004)`,
* `keras.optimizers.AdamW(1e-3, weight_decay=0.004)` (`stateless_apply`),
* `keras_adamwr.AdamWR(...)` as in `optimizer_step.py` (`stateless_apply`),

on float32 `(rows, 500)` parameters, ratios against Keras AdamW on JAX.
torch is not timed: no timing code for it is maintained here yet.

    python benchmarks/other_frameworks.py --json /tmp/other.json
"""

import argparse
import importlib.util
import os
import sys
import time

if importlib.util.find_spec("jax") is not None:
    os.environ["KERAS_BACKEND"] = "jax"  # before Keras is imported
os.environ.setdefault("JAX_PLATFORMS", "cpu")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

FRAMEWORKS = {
    "optax.adamw (JAX)": ("jax", "optax"),
    "torch.optim.AdamW (foreach=True / fused=True)": ("torch",),
}
# (label, parameters, tensors, full rounds, quick rounds or None to skip)
SIZES = (
    ("10M x 20", 10_000_000, 20, 15, 7),
    ("100M x 20", 100_000_000, 20, 5, None),
    ("2M x 500", 2_000_000, 500, 15, 7),
)
COLUMNS = 500


def _candidates():
    """name -> (description, make(params) -> (state, step)); JAX only."""
    import jax
    import keras
    import optax

    import keras_adamwr

    def donate(step):
        return jax.jit(step, donate_argnums=(0, 1))

    def optax_adamw(params):
        transform = optax.adamw(1e-3, weight_decay=0.004)

        def step(params, state, grads):
            updates, state = transform.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        return transform.init(params), donate(step)

    def keras_optimizer(factory):
        def make(params):
            optimizer = factory()
            optimizer.build([keras.Variable(p) for p in params])

            def step(params, state, grads):
                return optimizer.stateless_apply(state, grads, params)

            return [v.value for v in optimizer.variables], donate(step)

        return make

    return {
        "optax_adamw": ("`optax.adamw(1e-3, weight_decay=0.004)`", optax_adamw),
        "keras_adamw_jax": (
            "`keras.optimizers.AdamW(1e-3, weight_decay=0.004)`, JAX backend",
            keras_optimizer(lambda: keras.optimizers.AdamW(1e-3, weight_decay=0.004))),
        "adamwr_jax": (
            "`keras_adamwr.AdamWR(1e-3, first_cycle_steps=1000, "
            "normalized_weight_decay=0.025)`, JAX backend",
            keras_optimizer(lambda: keras_adamwr.AdamWR(
                1e-3, first_cycle_steps=1000, normalized_weight_decay=0.025))),
    }


def time_size(candidates, label, parameters, tensors, rounds, log):
    import jax
    import numpy as np

    rows = parameters // tensors // COLUMNS
    rng = np.random.default_rng(0)
    values = [rng.standard_normal((rows, COLUMNS), dtype=np.float32) * 0.05
              for _ in range(tensors)]
    grads = [jax.numpy.asarray(rng.standard_normal((rows, COLUMNS), dtype=np.float32) * 1e-3)
             for _ in range(tensors)]
    runners, calls, first = {}, {}, {}
    for name, (_, make) in candidates.items():
        holder = {"params": [jax.numpy.array(v) for v in values]}
        holder["state"], step = make(holder["params"])

        def run(count, holder=holder, step=step):
            for _ in range(count):
                holder["params"], holder["state"] = step(holder["params"], holder["state"], grads)
            jax.block_until_ready(holder["params"])

        start = time.perf_counter()
        run(1)
        first[name] = time.perf_counter() - start
        start = time.perf_counter()
        run(2)
        warm = (time.perf_counter() - start) / 2
        calls[name] = int(min(50, max(1, round(0.12 / max(warm, 1e-6)))))
        runners[name] = run
        log(f"  {label} {name:16s} first call {first[name]:6.2f} s, warm {warm * 1e3:8.2f} ms")
    times = _common.interleave(runners, rounds, calls)
    for name in runners:
        log(f"  {label} {name:16s} {np.median(times[name]) / parameters * 1e9:8.2f} ns/param")
    return {"label": label, "parameters": parameters, "tensors": tensors, "rounds": rounds,
            "times": times, "first_call_s": first}


def run(quick=False, log=print):
    """Which frameworks are importable; JAX timings where optax is."""
    notes, result = {}, {"quick": quick, "sizes": []}
    for label, modules in FRAMEWORKS.items():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            notes[label] = ("skipped: " + ", ".join(missing)
                            + " not installed (not installed by the benchmarks)")
        elif modules == ("torch",):
            notes[label] = ("installed, but not timed: no timing code for it is "
                            "maintained here yet")
        else:
            notes[label] = "timed below, in a process running Keras on the JAX backend"
        log(f"  {label}: {notes[label]}")
    result["notes"] = notes
    if notes["optax.adamw (JAX)"].startswith("timed"):
        import jax
        import keras
        import optax

        candidates = _candidates()
        result["candidates"] = {n: d for n, (d, _) in candidates.items()}
        result["versions"] = {"jax": jax.__version__, "optax": optax.__version__,
                              "keras": keras.__version__, "backend": keras.backend.backend()}
        for label, parameters, tensors, full_rounds, quick_rounds in SIZES:
            rounds = quick_rounds if quick else full_rounds
            if rounds is not None:
                result["sizes"].append(
                    time_size(candidates, label, parameters, tensors, rounds, log))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    result = run(args.quick, log=lambda text: print(text, flush=True))
    if args.json:
        _common.write_json(args.json, result)


if __name__ == "__main__":
    main()
