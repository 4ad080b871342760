#!/usr/bin/env bash
# One prepared check for a machine with a GPU, in under 8 minutes (each step has a time limit):
# install, the GPU-relevant tests, a few epochs of the classic recipe (`--config seed`, random
# weights) on dataset1 when present, inference fp32/bf16/fp16 at batch 1/8/32, a Markdown report.
#
# Usage: bash benchmarks/gpu_check.sh [--dry-run] [REPORT_DIR]
#   REPORT_DIR: where report.md and the logs go (default: $OUT, else gpu_check_report/).
#   --dry-run:  no install, no GPU: the same steps at toy sizes on the CPU with the current
#               python (or $PYTHON), to check the script itself in a minute or two.
# Environment: DATA (default: the first shared/datasets/dataset1 above this checkout),
#              VENV (default .venv-gpu), PYTHON (default python3).
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0
if [[ "${1:-}" == "--dry-run" ]]; then dry=1; shift; fi
report_dir=$(realpath -m "${1:-${OUT:-gpu_check_report}}")
mkdir -p "$report_dir"
report=$report_dir/report.md
start=$(date +%s)
status=()
slack=1  # time limits x slack: a dry run on a small shared CPU is far slower than a GPU machine

step() {  # step NAME SECONDS COMMAND... : run with a time limit, log it, note pass/fail/timeout
  local name=$1 limit=$(($2 * slack)) t0=$SECONDS rc
  shift 2
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@" >"$report_dir/$name.log" 2>&1
  rc=$?
  local verdict=ok
  if [[ $rc -eq 124 ]]; then verdict="timed out after ${limit}s"; elif [[ $rc -ne 0 ]]; then verdict="failed (exit $rc)"; fi
  status+=("| $name | $verdict | $((SECONDS - t0)) s |")
  echo "   $verdict in $((SECONDS - t0)) s; log: $report_dir/$name.log"
  return $rc
}

if [[ $dry -eq 1 ]]; then
  py=${PYTHON:-python3}
  slack=4
  device=cpu; accel=cpu; batches="1 2"; size="64 96"; secs=1; epochs=1; fc="--fc-channels 32"
  tests_k="resolve_backend or bf16"  # a quick few: the dry run checks the script, not the code
  export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
else
  venv=${VENV:-.venv-gpu}
  device=cuda; accel=gpu; batches="1 8 32"; size="360 480"; secs=8; epochs=3; fc=""
  tests_k="not dataset1"
  # --system-site-packages: a machine whose Python already has torch (CUDA) reuses it.
  if step install 150 bash -c "${PYTHON:-python3} -m venv --system-site-packages $venv && \
      $venv/bin/pip install -q -e '.[dev]'"; then
    py=$venv/bin/python
  else
    # Offline machines: the sources as they are, on whatever Python has torch.
    py=${PYTHON:-python3}
    export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
    status+=("| install fallback | $py with PYTHONPATH=src | |")
  fi
fi

{
  echo "# fcnseg GPU check ($(date -u +%Y-%m-%dT%H:%MZ)$([[ $dry -eq 1 ]] && echo ', DRY RUN on the CPU'))"
  echo
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- $($py -c 'import torch, platform; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, Python {platform.python_version()}")' 2>&1)"
  echo "- device: $($py -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device")' 2>&1)"
  command -v nvidia-smi >/dev/null && echo "- $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"
  echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
} >"$report"

# The tests that touch what a GPU run uses: models, inference, backends, export, precision, and
# training through Fabric (they run on the CPU; the steps below run the same code on the GPU).
step tests 90 "$py" -m pytest -q -x -p no:cacheprovider tests/test_models.py tests/test_backends.py \
  -k "$tests_k"

data=${DATA:-}
if [[ -z "$data" ]]; then
  for d in "$PWD" "$PWD/.." "$PWD/../.." "$PWD/../../.."; do
    [[ -d "$d/shared/datasets/dataset1" ]] && { data=$(realpath "$d/shared/datasets/dataset1"); break; }
  done
fi
run_dir=$report_dir/seed_run
rm -rf "$run_dir"  # our own folder from an earlier check, never a user's
if [[ $dry -eq 1 || -z "$data" ]]; then
  data=$report_dir/synthetic
  "$py" -c "from fcnseg.data.synthetic import make_synthetic_dataset as m; m('$data', counts={'train': 8, 'val': 2, 'test': 2}, size=(64, 96))" >/dev/null
  echo "- data: synthetic (dataset1 $([[ $dry -eq 1 ]] && echo 'not used in a dry run' || echo 'not found'))" >>"$report"
else
  echo "- data: $data" >>"$report"
fi
# The classic recipe, random weights (no download), a few epochs: bf16-mixed, feature cache on.
step seed_recipe 120 "$py" -m fcnseg train --config seed --data "$data" --out "$run_dir" \
  --weights-backbone none --epochs "$epochs" --accelerator "$accel" --precision bf16-mixed \
  --workers 2 $fc
test_images=$data/images_prepped_test
[[ -d "$test_images" ]] || test_images=$data/test/images
step predict 40 "$py" -m fcnseg predict --checkpoint "$run_dir/checkpoint_last.pt" \
  --input "$test_images" --out "$report_dir/predict" --device "$device" --batch-size 8
# shellcheck disable=SC2086
step inference 120 "$py" benchmarks/gpu_inference.py --device "$device" --batches $batches \
  --size $size --seconds "$secs" $fc

{
  echo
  echo "| step | result | time |"
  echo "|---|---|---|"
  printf '%s\n' "${status[@]}"
  echo
  if [[ -f "$run_dir/metrics.csv" ]]; then
    echo "### Seed recipe, $epochs epoch(s) (random weights, bf16-mixed)"
    echo
    echo '```'
    cat "$run_dir/metrics.csv"
    echo '```'
    echo
  fi
  [[ -f "$report_dir/inference.log" ]] && cat "$report_dir/inference.log"
  echo
  echo "Tests: $(tail -1 "$report_dir/tests.log" 2>/dev/null)"
  echo
  echo "Total: $(($(date +%s) - start)) s"
} >>"$report"
echo "report: $report"
