#!/usr/bin/env bash
# Trains a ResNet on CIFAR-10 (TFDS) with AdamWR: the main job.
# Data: $TFDS_DATA_DIR, else ../shared/data/tfds when present; with neither,
# examples/cifar10.py stops with a message (it never downloads).
# TensorFlow's early C++ log lines that TF_CPP_MIN_LOG_LEVEL asks to hide,
# and a cuInit failure on a machine without a GPU, are dropped from stderr
# (tools/_tf_log.sh); everything else passes.
source "$(dirname "$0")/_venv.sh" examples
source "$ROOT/tools/_tf_log.sh"
if [ -z "${TFDS_DATA_DIR:-}" ] && [ -d "$ROOT/../shared/data/tfds" ]; then
  export TFDS_DATA_DIR="$ROOT/../shared/data/tfds"
fi
# Only stderr goes through the filter; the status is cifar10.py's.
status=0
tf_filtered python examples/cifar10.py "$@" || status=$?
exit "$status"
