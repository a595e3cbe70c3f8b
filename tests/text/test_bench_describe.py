"""scripts/bench_describe.py at toy size on CPU: the GPU timing script's logic runs end to end."""

import importlib.util
import json
from pathlib import Path

from finecliper.text.backends import BackendOptions
from finecliper.text.bench import build_random_backend, synthetic_requests, time_describe

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_describe.py"


def _script():
    spec = importlib.util.spec_from_file_location("bench_describe", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_script_prints_one_json_line_per_setting(capsys):
    argv = [
        "--size",
        "tiny",
        "--batch-sizes",
        "1,2",
        "--modes",
        "dynamic,static",
        "--clips",
        "2",
        "--frame-size",
        "64",
        "--max-new-tokens",
        "3",
        "--device",
        "cpu",
        "--warmup-batches",
        "0",
    ]
    assert _script().main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    settings, best = lines[:-1], lines[-1]["best"]
    assert [(r["mode"], r["batch_size"]) for r in settings] == [
        ("dynamic", 1),
        ("dynamic", 2),
        ("static", 1),
        ("static", 2),
    ]
    for result in settings:
        assert result["clips"] == 2 and result["errors"] == 0 and result["clips_per_s"] > 0
        assert result["video_tokens_per_clip"] == 8 * (4 * 4 + 1)
        assert result["prompt_tokens"] > result["video_tokens_per_clip"]
        assert result["dtype"] == "float32" and result["params_b"] < 0.001
    assert best == max(settings, key=lambda r: r["clips_per_s"])


def test_generation_is_forced_to_full_length():
    options = BackendOptions(device="cpu", max_new_tokens=5, extra={"min_new_tokens": 5})
    backend = build_random_backend("tiny", options)
    inputs = backend.build_inputs(synthetic_requests(2, 8, 64))
    output = backend.model.generate(**inputs, **backend.generation_kwargs())
    assert output.shape[1] - inputs["input_ids"].shape[1] == 5
    timing = time_describe(backend, synthetic_requests(4, 8, 64), batch_size=2)
    assert timing["clips"] == 4 and timing["new_tokens"] == 5
