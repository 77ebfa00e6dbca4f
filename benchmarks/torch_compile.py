"""torch backend: `fit(jit_compile=True)` (torch.compile, Inductor) with our
optimizers against Keras' AdamW, in the same process.

Issue 12 measured 9 recompiles of AdamWR against Keras AdamW's 2, and 12
steps in 60-77 s against 38.5 s. For each optimizer this script reports
Dynamo's unique graphs and graph breaks, the wall time of a first 12-step
fit (tracing and compiling included) and of a second one (compiled), and
their ratios to Keras' AdamW. tests/test_torch_compile.py asserts the graph
counts; times are only measured here.

    KERAS_BACKEND=torch python benchmarks/torch_compile.py --json /tmp/tc.json
"""

import argparse
import os
import sys
import tempfile
import time

os.environ["KERAS_BACKEND"] = "torch"
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp())  # cold
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

STEPS = 12


def optimizers():
    import keras

    import keras_adamwr

    return {
        "keras.AdamW": lambda: keras.optimizers.AdamW(1e-3),
        "AdamW": lambda: keras_adamwr.AdamW(1e-3, weight_decay=1e-4),
        "AdamWR": lambda: keras_adamwr.AdamWR(
            1e-3, first_cycle_steps=4, normalized_weight_decay=0.05),
        "SGDWR": lambda: keras_adamwr.SGDWR(
            1e-2, first_cycle_steps=4, normalized_weight_decay=0.05),
    }


def measure(make_optimizer):
    import keras
    import numpy as np
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8,)), keras.layers.Dense(16),
        keras.layers.BatchNormalization(), keras.layers.Dense(1)])
    model.compile(make_optimizer(), "mse", jit_compile=True)
    x = np.random.rand(8 * STEPS, 8).astype("float32")
    y = np.random.rand(8 * STEPS, 1).astype("float32")
    times = []
    for _ in range(2):
        start = time.perf_counter()
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
        times.append(time.perf_counter() - start)
    return {"unique_graphs": counters["stats"]["unique_graphs"],
            "graph_breaks": sum(counters["graph_break"].values()),
            "first_fit_s": times[0], "second_fit_s": times[1]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    results = {name: measure(make) for name, make in optimizers().items()}
    reference = results["keras.AdamW"]
    print(f"{STEPS}-step fit(jit_compile=True), torch backend, Inductor (cold cache)")
    print(f"{'optimizer':13} {'graphs':>6} {'breaks':>6} {'first fit s':>11} "
          f"{'ratio':>6} {'second fit s':>12} {'ratio':>6}")
    for name, r in results.items():
        print(f"{name:13} {r['unique_graphs']:6d} {r['graph_breaks']:6d} "
              f"{r['first_fit_s']:11.1f} {r['first_fit_s'] / reference['first_fit_s']:6.2f} "
              f"{r['second_fit_s']:12.2f} {r['second_fit_s'] / reference['second_fit_s']:6.2f}")
    if args.json:
        _common.write_json(args.json, {"machine": _common.machine_info(),
                                       "results": results})


if __name__ == "__main__":
    main()
