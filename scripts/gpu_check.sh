#!/usr/bin/env bash
# GPU check of issue 7: `finecliper bench --device cuda` for base and full (training-step and
# inference clips/s, peak memory, the naive fp32/eager mode in the same run, per-block gradient
# checkpointing for full), the data pipeline with DataLoader workers, and the CUDA smoke tests.
# Budget: about 8 minutes on one H100/H200 (590 s if every timeout is hit); each part has
# its own timeout and `--out` keeps every finished case, so a slow part costs only its own
# remaining figures. $OUT (default ./gpu_check_out) receives 7 files: env.txt, run.log,
# step_base.json, step_full.json, step_full_ckpt.json, pipeline.json and summary.txt (every
# figure and check, also printed last).
#
# Run from the repository root on a machine with torch and transformers. The lent GPU machines
# (torch 2.11, transformers 5.17) lack pydantic and PyAV: carry them as wheels in .whl/ (ignored
# by git), fetched where pip works:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl pydantic==2.14.4 pydantic-core==2.50.5 \
#     annotated-types==0.8.0 typing-inspection==0.4.5 av==18.1.0 simplejpeg==1.9.0
# (38 MB). Set FINECLIPER_COMMIT to the commit measured when .git does not travel along.
set -uo pipefail

OUT="${OUT:-./gpu_check_out}"
WHEELS="${WHEELS:-.whl}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
LOG="$OUT/run.log"
: >"$LOG"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

if compgen -G "$WHEELS/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/finecliper-site "$WHEELS"/*.whl >>"$LOG" 2>&1 || exit 3
    export PYTHONPATH="$PYTHONPATH:/tmp/finecliper-site"
fi
if ! "$PYTHON" -c "import finecliper.bench.suite, finecliper.data.pack" >>"$LOG" 2>&1; then
    echo "finecliper does not import here (carry the wheels named above):"
    tail -n 3 "$LOG"
    exit 3
fi
if ! "$PYTHON" -m finecliper bench --help >/dev/null 2>&1; then
    echo "the bench command is not registered: add finecliper.bench.commands to cli.py"
    exit 3
fi
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv
    "$PYTHON" -c "import torch, transformers; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'cuda', torch.version.cuda)"
    nproc
} >"$OUT/env.txt" 2>&1

bench() {  # bench NAME TIMEOUT ARGS...: `finecliper bench ARGS` -> $OUT/NAME.json
    local name="$1" limit="$2"
    shift 2
    echo "== $name: finecliper bench $*" | tee -a "$LOG"
    timeout "$limit" "$PYTHON" -m finecliper bench --out "$OUT/$name.json" "$@" >>"$LOG" 2>&1
    local status=$?
    [ "$status" -eq 0 ] || echo "   $name ended with status $status: finished cases are kept"
}

STEP=(--device cuda --only step --batch 32 --steps 6 --warmup 2)
# 1. base: the naive fp32/eager reference, bf16 SDPA, and bf16 with the image tower compiled.
bench step_base 140 "${STEP[@]}" --variant base --modes naive,bf16,compiled
# 2. full without checkpointing (on an 80 GB card bf16 may not fit batch 32: reported so).
bench step_full 160 "${STEP[@]}" --variant full --modes naive,bf16,compiled
# 3. full with per-block gradient checkpointing, the configuration for cards under 40 GB.
bench step_full_ckpt 110 "${STEP[@]}" --variant full --modes bf16,compiled \
    --checkpointing on --phases train
# 4. data pipeline at 224 px: one worker, and a DataLoader with 8 workers.
bench pipeline 60 --device cuda --only pipeline --pipeline-sizes 224 --loader-workers 8
# 5. CUDA smoke tests: the bench modes on a tiny model, packed batches, rendering, transforms.
echo "== smoke tests" | tee -a "$LOG"
timeout 120 "$PYTHON" -m pytest -q -p no:cacheprovider \
    "tests/bench/test_bench_suite.py::test_cuda_steps_run_in_every_mode" \
    "tests/bench/test_pack.py::test_cuda_batch_from_a_pack_matches_cpu" \
    "tests/face/test_render.py::test_cuda_matches_cpu" \
    "tests/data/test_transforms.py::test_cuda_matches_cpu" >>"$LOG" 2>&1
SMOKE=$?

"$PYTHON" - "$OUT" "$SMOKE" <<'EOF' | tee "$OUT/summary.txt"
import json
import sys
from pathlib import Path

out, smoke = Path(sys.argv[1]), int(sys.argv[2])
print((out / "env.txt").read_text().strip())


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def step_line(r: dict) -> str:
    train = f"train {number(r['train_clips_per_s'])} clips/s {number(r['train_peak_gib'])} GiB"
    infer = f"infer {number(r['infer_clips_per_s'])} clips/s {number(r['infer_peak_gib'])} GiB"
    ckpt = " ckpt" if r["checkpointing"] else ""
    return f"{r['variant']} {r['mode']}{ckpt} batch {r['batch']}: {train}, {infer} {r['error'] or ''}"


for name in ("step_base", "step_full", "step_full_ckpt", "pipeline"):
    try:
        report = json.loads((out / f"{name}.json").read_text())
    except (OSError, ValueError):
        print(f"{name}: no result")
        continue
    for r in report.get("step", {}).get("results", []):
        print(f"{name}: {step_line(r)}")
    for variant, ratio in report.get("step", {}).get("speedup", {}).items():
        print(f"{name}: {variant} training speed-up over naive: {ratio}")
    for r in report.get("pipeline", {}).get("results", []):
        print(
            f"{name}: {r['source']} {r['image_size']} px: {r['clips_per_s']:.1f} clips/s per "
            f"worker ({r['clips_per_cpu_s']:.1f} per CPU second)"
        )
    loader = report.get("pipeline", {}).get("loader")
    if loader:
        print(f"{name}: DataLoader, {loader['workers']} workers: {loader['clips_per_s']:.1f} clips/s")
    for c in report.get("checks", []):
        print(f"{name}: check {c['name']} = {c['value']} (target {c['target']}): {c['ok']}")
    print(f"{name}: commit {report['machine']['commit']}, {report['machine']['date']}")
print(f"smoke tests: {'passed' if smoke == 0 else f'FAILED (status {smoke}), see run.log'}")
EOF
