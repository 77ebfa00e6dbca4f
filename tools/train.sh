#!/usr/bin/env bash
# Trains a ResNet on CIFAR-10 (TFDS) with AdamWR: the main job.
# Data: $TFDS_DATA_DIR, else ../shared/data/tfds when present, else TFDS'
# default (which downloads where a network is available).
source "$(dirname "$0")/_venv.sh" examples
if [ -z "${TFDS_DATA_DIR:-}" ] && [ -d "$ROOT/../shared/data/tfds" ]; then
  export TFDS_DATA_DIR="$ROOT/../shared/data/tfds"
fi
exec python examples/cifar10.py "$@"
