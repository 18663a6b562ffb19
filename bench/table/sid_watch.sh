#!/usr/bin/env bash
# A SiD run watched checkpoint by checkpoint: trains `distill --method sid` on the shipped MNIST
# teacher with the given extra flags, keeps each checkpoint's EMA generator, then scores each at
# N = 200 (FID-proxy) into OUT/trajectory.txt. Monitoring only: nothing is selected by it.
#   bash bench/table/sid_watch.sh OUT [distill flags...], e.g. OUT=~/sid-watch --steps 500
set -euo pipefail
out=$(realpath -m "$1"); shift
repo="$(cd "$(dirname "$0")/../.." && pwd)"
diffkd="$repo/build/release/diffkd"
mkdir -p "$out"
cd "$repo"
"$diffkd" distill --method sid --teacher models/mnist-teacher.safetensors --batch 64 --checkpoint-every 50 \
  --run-dir "$out/run" --resume --seed 1 --threads 2 "$@" > "$out/train.log" 2>&1 &
pid=$!
step_of() {  # the step in a model file's metadata
  python3 -c "
import json, struct, sys
f = open(sys.argv[1], 'rb'); n = struct.unpack('<Q', f.read(8))[0]; print(json.loads(f.read(n))['__metadata__']['step'])" "$1" 2>/dev/null || true
}
last=""
keep() {
  local g="$out/run/generator.safetensors" s
  [ -f "$g" ] || return 0
  s=$(step_of "$g")
  if [ -n "$s" ] && [ "$s" != "$last" ]; then cp "$g" "$out/ema-$s.safetensors"; last=$s; fi
}
while kill -0 $pid 2>/dev/null; do sleep 5; keep; done
wait $pid || { echo "sid_watch: the run failed; see $out/train.log" >&2; exit 1; }
keep
: > "$out/trajectory.txt"
for m in $(ls "$out"/ema-*.safetensors | sort -V); do
  s=$(basename "$m" .safetensors)
  "$diffkd" eval --model "$m" --classifier models/mnist-classifier.safetensors --count 200 --seed 0 --threads 2 \
    --out "$out/$s.json" > "$out/$s.log" 2>&1
  echo "${s#ema-} $(python3 -c "import json; print(round(json.load(open('$out/$s.json'))['fid_proxy'], 2))")" \
    >> "$out/trajectory.txt"
done
cat "$out/trajectory.txt"
