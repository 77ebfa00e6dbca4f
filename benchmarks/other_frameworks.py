"""optax.adamw (JAX) and torch.optim.AdamW (foreach / fused) on the same sizes.

Optional: these frameworks are not dependencies of keras_adamwr and the
benchmarks never install them. This script reports which are importable;
where one is missing the comparison is skipped with a note. (None of them
is installed in the environment the published figures come from, so no
timing code for them ships untested.)

    python benchmarks/other_frameworks.py --json /tmp/other.json
"""

import argparse
import importlib.util
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

FRAMEWORKS = {
    "optax.adamw (JAX)": ("jax", "optax"),
    "torch.optim.AdamW (foreach=True / fused=True)": ("torch",),
}


def run(quick=False, log=print):
    """Which frameworks are importable; a skip note for the others."""
    notes = {}
    for label, modules in FRAMEWORKS.items():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            notes[label] = ("skipped: " + ", ".join(missing)
                            + " not installed (not installed by the benchmarks)")
        else:
            notes[label] = ("installed, but not timed: no timing code for it is "
                            "maintained here yet")
        log(f"  {label}: {notes[label]}")
    return {"notes": notes, "quick": quick}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    result = run(args.quick)
    if args.json:
        _common.write_json(args.json, result)


if __name__ == "__main__":
    main()
