#!/usr/bin/env bash
# Serve the GenEvolve policy with vLLM's OpenAI-compatible server.
#
#   MODEL_PATH=MeiGen-AI/GenEvolve PORT=8000 TP=1 DP=8 bash scripts/serve_vllm.sh
#
# Variables: MODEL_PATH, PORT (8000), TP (1), DP (1), MAX_MODEL_LEN (65536),
# SERVED_MODEL_NAME (GenEvolve) and MEM_FRACTION (0.85), as in the original;
# SERVED_NAME and GPU_MEMORY_UTILIZATION are accepted for the last two.
#
# TP shards one replica over TP GPUs; DP starts DP replicas behind the one
# port (GPUs used: TP x DP). For throughput, prefer more DP replicas while
# one replica fits a GPU. Extra arguments are passed to `vllm serve`.
set -euo pipefail

MODEL_PATH="${MODEL_PATH:?set MODEL_PATH to the checkpoint (e.g. MeiGen-AI/GenEvolve)}"
PORT="${PORT:-8000}"
TP="${TP:-1}"
DP="${DP:-1}"
MAX_MODEL_LEN="${MAX_MODEL_LEN:-65536}"
SERVED_NAME="${SERVED_MODEL_NAME:-${SERVED_NAME:-GenEvolve}}"
GPU_MEMORY_UTILIZATION="${MEM_FRACTION:-${GPU_MEMORY_UTILIZATION:-0.85}}"

for name in PORT TP DP MAX_MODEL_LEN; do
    if ! [[ "${!name}" =~ ^[1-9][0-9]*$ ]]; then
        echo "serve_vllm.sh: $name must be a positive integer, got '${!name}'" >&2
        exit 2
    fi
done

echo "serving $MODEL_PATH as '$SERVED_NAME' on port $PORT: TP=$TP x DP=$DP = $((TP * DP)) GPUs" >&2
exec vllm serve "$MODEL_PATH" \
    --served-model-name "$SERVED_NAME" \
    --host 0.0.0.0 \
    --port "$PORT" \
    --tensor-parallel-size "$TP" \
    --data-parallel-size "$DP" \
    --max-model-len "$MAX_MODEL_LEN" \
    --gpu-memory-utilization "$GPU_MEMORY_UTILIZATION" \
    --trust-remote-code \
    "$@"
