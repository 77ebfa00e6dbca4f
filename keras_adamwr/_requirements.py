"""Import-time checks: a Keras version the library is tested on, and a backend.

Imported first by `keras_adamwr/__init__.py`, so an unsupported install fails
with a message that says what to install, instead of an `AttributeError`
deep inside Keras (3.7-3.9 lack `add_optimizer_variables`) or a misleading
argument error (3.6 and older wrap `keras.Variable`).
"""

import os
import re

# The oldest Keras the test suite runs on (`tools/test.sh --matrix`, cell
# keras310); setup.cfg's `install_requires` states the same bound.
MIN_KERAS = (3, 10)
BACKEND_PACKAGES = ("tensorflow", "jax", "torch")


def _missing_backend(error):
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    return ImportError(
        f"keras_adamwr needs a Keras backend, and Keras' backend {backend!r} "
        f"(KERAS_BACKEND, else ~/.keras/keras.json, else tensorflow) cannot be "
        f"imported: {error}. Install the library with its backend, e.g. "
        f"`pip install \"keras_adamwr[tensorflow]\"` (or [jax], or [torch]), or set "
        f"KERAS_BACKEND to a backend that is installed.")


def check_keras_version(version):
    """Raises ImportError when `version` (a string) is older than MIN_KERAS."""
    match = re.match(r"(\d+)\.(\d+)", str(version))
    found = tuple(map(int, match.groups())) if match else (0, 0)
    if found < MIN_KERAS:
        minimum = ".".join(map(str, MIN_KERAS))
        raise ImportError(
            f"keras_adamwr needs Keras >= {minimum}. Found Keras {version}. "
            f"Upgrade with `pip install -U \"keras>={minimum}\"`.")


try:
    import keras
except ModuleNotFoundError as error:
    if error.name in BACKEND_PACKAGES:
        raise _missing_backend(error) from error
    raise
check_keras_version(getattr(keras, "__version__", "0"))
