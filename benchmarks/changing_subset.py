"""An eager loop whose set of variables changes every step.

    python benchmarks/changing_subset.py [--quick] [--json PATH]

`optimizer.apply(grads, variables)` in a Python loop of 150 steps, each on
another random half of 20 variables of 10,000 float32 parameters (as a
custom loop that trains one branch or layer group at a time does). With
`jit_compile=True` (the default on TensorFlow) the optimizer compiles one
XLA function per set of variables, for its first 4 sets, and runs later
sets as TensorFlow kernels (keras_adamwr/optimizers/_compiled.py); with
`jit_compile=False` every step runs as kernels. A fresh optimizer per
timing; both settings alternate within each round. Reported: total time
of the 150 steps (compiles included) and the median step of the last 100.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

import numpy as np  # noqa: E402

STEPS, COUNT, SIZE = 150, 20, 10_000


def _loop(jit_compile):
    import keras
    import keras_adamwr

    rng = np.random.default_rng(0)
    variables = [keras.Variable(np.zeros(SIZE, "float32"), name=f"v{i}")
                 for i in range(COUNT)]
    grads = [keras.ops.convert_to_tensor(np.full(SIZE, 1e-3, "float32"))
             for _ in range(COUNT)]
    optimizer = keras_adamwr.AdamWR(1e-3, first_cycle_steps=50, jit_compile=jit_compile)
    optimizer.build(variables)
    steps = []
    start = time.perf_counter()
    for _ in range(STEPS):
        chosen = sorted(rng.choice(COUNT, COUNT // 2, replace=False))
        begin = time.perf_counter()
        optimizer.apply([grads[i] for i in chosen], [variables[i] for i in chosen])
        _ = variables[chosen[0]].numpy()  # wait for the step
        steps.append(time.perf_counter() - begin)
    return time.perf_counter() - start, float(np.median(steps[-100:]))


def run(rounds):
    _common.quiet_tensorflow()
    from keras_adamwr.version import __version__

    totals = {True: [], False: []}
    late = {True: [], False: []}
    for index in range(rounds):
        for jit_compile in ((True, False) if index % 2 == 0 else (False, True)):
            total, step = _loop(jit_compile)
            totals[jit_compile].append(total)
            late[jit_compile].append(step)
    ratios = [a / b for a, b in zip(totals[True], totals[False])]
    late_ratios = [a / b for a, b in zip(late[True], late[False])]
    result = {
        "version": __version__, "rounds": rounds, "steps": STEPS,
        "variables": COUNT, "parameters": SIZE,
        "total_s": {str(k): float(np.median(v)) for k, v in totals.items()},
        "late_step_ms": {str(k): 1e3 * float(np.median(v)) for k, v in late.items()},
        "total_ratio": float(np.median(ratios)),
        "late_step_ratio": float(np.median(late_ratios)),
        "machine": _common.machine_info(),
    }
    print(f"150 steps: jit_compile=True {result['total_s']['True']:.2f} s, False "
          f"{result['total_s']['False']:.2f} s ({result['total_ratio']:.2f}x); last 100 "
          f"steps: {result['late_step_ms']['True']:.2f} vs "
          f"{result['late_step_ms']['False']:.2f} ms ({result['late_step_ratio']:.2f}x)",
          flush=True)
    return result


def section(result):
    """The Markdown section of docs/performance.md for these results."""
    return "\n".join([
        "## Eager loop over a changing set of variables",
        "",
        f"`benchmarks/changing_subset.py`, keras_adamwr {result['version']}: "
        f"{result['steps']} eager `optimizer.apply` steps, each on another random "
        f"half of {result['variables']} variables of {result['parameters']:,} "
        f"parameters, median of {result['rounds']} rounds.",
        "",
        "| AdamWR | 150 steps, compiles included | a step after the first 50 |",
        "|---|---|---|",
        f"| `jit_compile=True` (default) | {result['total_s']['True']:.2f} s | "
        f"{result['late_step_ms']['True']:.2f} ms |",
        f"| `jit_compile=False` | {result['total_s']['False']:.2f} s | "
        f"{result['late_step_ms']['False']:.2f} ms |",
        "",
        f"The default costs {result['total_ratio']:.2f}x the time of "
        "`jit_compile=False` here: it compiles one XLA function per set of "
        "variables for the first 4 sets, then runs other sets as TensorFlow "
        "kernels, as `jit_compile=False` does throughout. Turn it off "
        "(`jit_compile=False`) for loops whose set of variables keeps changing "
        "and whose steps are short; keep it where the same variables are "
        "updated step after step (every `fit`), where the compiled update "
        "is the faster one (section 1).",
    ])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round instead of 3")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    result = run(1 if args.quick else 3)
    if args.json:
        _common.write_json(args.json, result)
    print(section(result))


if __name__ == "__main__":
    main()
