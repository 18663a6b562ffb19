#!/usr/bin/env bash
# Resumes the teacher's training run in the background (see carry/README.md). The run folder lives
# outside the work tree ($DIFFKD_TEACHER_RUN, default /work/runs/teacher); when it is missing, it is
# rebuilt from the checkpoint carried in carry/teacher. Progress goes to <run>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${DIFFKD_TEACHER_RUN:-/work/runs/teacher}
if [ ! -e "$run/latest.json" ]; then
  mkdir -p "$(dirname "$run")"
  cp -r carry/teacher "$run"
  echo "resume-teacher: restored $run from carry/teacher (step $(grep -o '[0-9]*' "$run/latest.json" | head -1))"
fi
bash scripts/setup.sh > /dev/null
bash scripts/build.sh release > /dev/null
bin_dir="$(dirname "$run")/bin"
mkdir -p "$bin_dir"
cp build/release/diffkd "$bin_dir/diffkd"
export DIFFKD_DATA="$PWD/datasets"
# The run's own settings (run.json refuses any change to what defines the model).
(setsid nohup "$bin_dir/diffkd" train --model mnist-unet --data mnist --run-dir "$run" --steps "${STEPS:-20000}" \
   --ema 0.999 --checkpoint-every 250 --keep-last 4 --threads 2 --seed 0 --resume >> "$run.log" 2>&1 &)
echo "resume-teacher: training in the background; progress in $run.log"
