# Sourced by tools/train.sh: `tf_log_filter` reads stderr and drops the C++
# log lines that TensorFlow (2.21) prints before absl::InitializeLog, where
# TF_CPP_MIN_LOG_LEVEL does not reach them yet:
# - the "All log messages before absl::InitializeLog()" banner;
# - I-lines (info) when TF_CPP_MIN_LOG_LEVEL >= 1, W-lines when >= 2;
# - on a machine without an NVIDIA device (/dev/nvidiactl), the line
#   "failed call to cuInit: ... UNKNOWN ERROR (303)", which only says that
#   there is no GPU; with a device, a cuInit error is a real one and stays.
# Every other line (E-lines, Python warnings, tracebacks) passes unchanged.
tf_log_filter() {
  local level="${TF_CPP_MIN_LOG_LEVEL:-0}" rest='[0-9]{4} [0-9:.]+ +[0-9]+ [A-Za-z0-9_.]+:[0-9]+\] '
  local pattern='^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$'
  [ "$level" -ge 1 ] 2>/dev/null && pattern+="|^I$rest"
  [ "$level" -ge 2 ] 2>/dev/null && pattern+="|^W$rest"
  if [ ! -e "${TF_LOG_NVIDIA_DEVICE:-/dev/nvidiactl}" ]; then
    pattern+="|^E${rest}failed call to cuInit: .*UNKNOWN ERROR \(303\)$"
  fi
  grep --line-buffered -Ev "$pattern" || true
}

# `tf_filtered CMD ARGS...` runs CMD with only its stderr through
# tf_log_filter: stdout stays where it was (fd 3), and the status is CMD's
# (with pipefail; the filter always returns 0).
tf_filtered() {
  local status=0
  { "$@" 2>&1 >&3 3>&- | tf_log_filter >&2 3>&-; } 3>&1 || status=$?
  return "$status"
}
