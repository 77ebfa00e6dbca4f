#!/usr/bin/env bash
# The test matrix (`tools/test.sh --matrix [CELL...]`, what CI runs): each
# cell has its own virtual environment, made on first use.
#   tensorflow  newest supported Keras, TensorFlow backend: the full suite (.venv)
#   keras310    oldest supported Keras (3.10) with TensorFlow 2.19, its
#               release-time TensorFlow: the suite without tf.distribute's
#               multi-process tests (.venv-keras310)
#   jax, torch  newest Keras on JAX / PyTorch (CPU), without TensorFlow
#               installed: every test that is not `tensorflow_only`
#               (tests/conftest.py) (.venv-jax, .venv-torch)
# Prints each cell's time and exits non-zero when any cell fails.
set -uo pipefail
cd "$(dirname "$0")/.."
# torch==2.13.0: a CPU build where pip is set up for it (as on CI); plain
# `torch` on PyPI is a CUDA build of several GB. Override with TORCH_SPEC.
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
PYTEST=(python -m pytest tests -q -p no:cacheprovider)

cell() {
  case "$1" in
    tensorflow) VENV=.venv; source tools/_venv.sh test,examples
                "${PYTEST[@]}" ;;
    keras310)   VENV=.venv-keras310; source tools/_venv.sh test \
                  "keras==3.10.*" "tensorflow==2.19.*"
                "${PYTEST[@]}" --ignore=tests/test_distribute.py ;;
    jax)        VENV=.venv-jax; source tools/_venv.sh jax "pytest>=7"
                KERAS_BACKEND=jax JAX_PLATFORMS=cpu "${PYTEST[@]}" ;;
    torch)      VENV=.venv-torch; source tools/_venv.sh torch "pytest>=7" "$TORCH_SPEC"
                # A cache of its own: torch.compile's shared /tmp cache can
                # hold half-written kernels of concurrent runs.
                TORCHINDUCTOR_CACHE_DIR="$(mktemp -d)" KERAS_BACKEND=torch "${PYTEST[@]}" ;;
    *) echo "unknown cell: $1 (tensorflow, keras310, jax, torch)" >&2; return 2 ;;
  esac
}

CELLS=("$@")
[ ${#CELLS[@]} -eq 0 ] && CELLS=(tensorflow keras310 jax torch)
SUMMARY=() STATUS=0 START=$SECONDS
for name in "${CELLS[@]}"; do
  echo "=== matrix cell: $name"
  export KERAS_ADAMWR_CELL="$name"
  began=$SECONDS
  ( cell "$name" )
  code=$?
  [ $code -ne 0 ] && STATUS=1
  SUMMARY+=("$(printf '%-11s %s  %4d s' "$name" "$([ $code -eq 0 ] && echo pass || echo FAIL)" $((SECONDS - began)))")
done
echo "=== matrix: $((SECONDS - START)) s"
printf '%s\n' "${SUMMARY[@]}"
exit $STATUS
