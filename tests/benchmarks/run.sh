#!/usr/bin/env bash
# Speed benchmarks with a committed baseline (see tests/benchmarks/README.md).
#
#   tests/benchmarks/run.sh            run, compare against the baseline of this machine id if one exists
#   tests/benchmarks/run.sh --save     run and save a new baseline into .benchmarks-baseline/
#   BENCH_FAIL=0.25 BENCH_RAW_FAIL=mean:25% tests/benchmarks/run.sh   thresholds (raw check off unless set)
#   extra arguments go to pytest, e.g. tests/benchmarks/run.sh -k mlp
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(pwd)"
STORAGE=.benchmarks-baseline
FAIL="${BENCH_FAIL:-0.25}"
SAVE=0
if [[ "${1:-}" == "--save" ]]; then SAVE=1; shift; fi
MACHINE=$(python -c 'from pytest_benchmark.utils import get_machine_id; print(get_machine_id())')
BASELINE=$(ls "$STORAGE/$MACHINE"/*.json 2>/dev/null | sort | tail -n 1 || true)
OUT=$(mktemp -d)/bench.json
ARGS=(tests/benchmarks --benchmark-only --benchmark-storage="file://$STORAGE"
      --benchmark-max-time=0.5 --benchmark-min-rounds=5 --benchmark-json="$OUT"
      --benchmark-columns=min,median,mean,rounds --benchmark-sort=name -p no:cacheprovider)
if [[ $SAVE == 1 ]]; then
  python -m pytest "${ARGS[@]}" --benchmark-save=baseline "$@"
  echo "saved baseline under $STORAGE/$MACHINE/ (commit it)"
  exit 0
fi
if [[ -z "$BASELINE" ]]; then
  echo "no baseline for machine id $MACHINE in $STORAGE/: running without comparison" \
       "(save one with: tests/benchmarks/run.sh --save)" >&2
  python -m pytest "${ARGS[@]}" "$@"
  exit 0
fi
echo "baseline: $BASELINE"
RAW=()
if [[ -n "${BENCH_RAW_FAIL:-}" ]]; then RAW=(--benchmark-compare-fail="$BENCH_RAW_FAIL"); fi
# pytest-benchmark's own table (absolute times) against the baseline; the gate is the normalised check
python -m pytest "${ARGS[@]}" --benchmark-compare="$(basename "$BASELINE" .json | cut -d_ -f1)" "${RAW[@]}" "$@"
python tests/benchmarks/normalised_compare.py "$BASELINE" "$OUT" --fail "$FAIL"
