#!/usr/bin/env bash
# The Validate step of an edge-model pipeline (Train -> Convert -> Validate -> Package -> OTA): convert the model,
# benchmark every variant on the farm, and fail the job when it got slower or less accurate than its recent history.
#
#   examples/ci/benchmark-gate.sh MODEL [INVENTORY...]
#
# MODEL is a .keras/.h5 file, a SavedModel folder or a .tflite file. Settings, from the environment:
#   FARM_DB             the team's store (default: farm.db here); a PostgreSQL URL when several machines share a farm
#   VARIANTS            default: fp32,fp16,dynamic
#   EVAL                an .npz of x inputs and y labels, for top-1 accuracy (optional)
#   MAX_SLOWDOWN        default: 5%          MAX_ACCURACY_DROP   default: 0.01
#   HISTORY             earlier sweeps per configuration to compare with (default: 5)
#   SWEEP_NAME          default: ci-$GITHUB_SHA (or ci-local)
# Writes sweep.json (the sweep's summary) and compare.md (the gate's table, for a CI comment or job summary).
# Exit: 0 nothing regressed (or no history yet), 1 some jobs failed, 2 bad input, 3 a regression.
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 MODEL [INVENTORY...]" >&2
    exit 2
fi
model=$1
shift
db=${FARM_DB:-farm.db}
name=${SWEEP_NAME:-ci-${GITHUB_SHA:-local}}
inventories=()
for inventory in "$@"; do
    inventories+=(--inventory "$inventory")
done
eval_args=()
if [ -n "${EVAL:-}" ]; then
    eval_args=(--eval "$EVAL")
fi

# 1. Convert and benchmark: every variant on every device of the inventory, 3 repeats each.
sweep_status=0
farm sweep run --model "$model" --variants "${VARIANTS:-fp32,fp16,dynamic}" ${eval_args[@]+"${eval_args[@]}"} \
    ${inventories[@]+"${inventories[@]}"} --name "$name" --db "$db" --json > sweep.json || sweep_status=$?
if [ "$sweep_status" -ge 2 ]; then
    exit "$sweep_status"  # bad input: nothing was measured
fi
candidate=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["sweep"])' sweep.json)

# 2. Gate: the new sweep against each configuration's last HISTORY sweeps. The first sweep has nothing to beat.
earlier=$(farm sweep status --db "$db" --json | python3 -c '
import json, sys
sweeps = json.load(sys.stdin)["sweeps"]
names = [s["sweep"] for s in sweeps]
print(sum(1 for s in sweeps[:names.index(sys.argv[1])] if s["state"] == "done"))' "$candidate")
if [ "$earlier" -eq 0 ]; then
    echo "sweep $candidate: no earlier sweep in $db yet; it is the baseline from now on" | tee compare.md
    exit "$sweep_status"
fi
gate_status=0
farm compare --history "${HISTORY:-5}" "$candidate" --max-slowdown "${MAX_SLOWDOWN:-5%}" \
    --max-accuracy-drop "${MAX_ACCURACY_DROP:-0.01}" --db "$db" --markdown > compare.md || gate_status=$?
cat compare.md
if [ "$gate_status" -ne 0 ]; then
    exit "$gate_status"
fi
exit "$sweep_status"
