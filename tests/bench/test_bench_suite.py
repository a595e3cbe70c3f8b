"""``finecliper bench`` on a tiny random CLIP: model steps, latency, pipeline, checks, CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from finecliper.bench import commands, gpu
from finecliper.bench.gpu import StepSettings, run_step_benchmark, speedups
from finecliper.bench.latency import bare_forward, run_latency, torch_threads
from finecliper.bench.memory import check_projection, run_memory, tower_saved_bytes
from finecliper.bench.models import (
    CLASSES,
    DESCRIPTION,
    ClipShape,
    build_bench_model,
    cached_label_embeddings,
    random_clip_batch,
    word_tokenizer,
)
from finecliper.bench.pipeline import measure_loader, run_pipeline
from finecliper.bench.suite import BenchOptions, checks, format_report, run_suite
from finecliper.runtime.inputs import to_model_inputs

TINY = StepSettings(backbone="tiny", image_size=32, frames=4, batch=2, steps=1, warmup=1)
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread, and do not fight other jobs for the cores."""
    with torch_threads(1):
        yield


def tiny_inputs(model, batch: int = 2):
    clips = random_clip_batch(ClipShape(batch, 4, 32))
    return to_model_inputs(clips, CPU, modalities=model.modalities, tokenizer=model.tokenizer)


def test_word_tokenizer_has_the_towers_vocabulary_and_whole_words() -> None:
    tokenizer = word_tokenizer(["A person with an expression of no anger.", DESCRIPTION], 500, 77)
    assert tokenizer.vocab_size == 500 and tokenizer.eos_token_id == 499
    tokens = tokenizer(["a person with an expression of no anger."])
    assert tokens.input_ids.shape == (1, 11)  # start, 8 words, '.', end: one token per word
    assert tokenizer(["x" * 200 + " " + DESCRIPTION]).input_ids.shape[1] == 77


def test_cached_label_embeddings_give_the_same_predictions() -> None:
    model = build_bench_model("full", "tiny", image_size=32, num_frames=4).eval()
    inputs = tiny_inputs(model)
    with torch.no_grad():
        expected = model(inputs).logits
        with cached_label_embeddings(model):
            assert torch.allclose(model(inputs).logits, expected, atol=1e-6)
    assert "label_embeddings" not in vars(model)  # the method is the class's again


def test_bare_forward_is_the_backbone_work_the_model_does() -> None:
    """Adapters start as identity/nothing, so an untrained model embeds as plain CLIP does."""
    model = build_bench_model("full", "tiny", image_size=32, num_frames=4).eval()
    inputs = tiny_inputs(model)
    with torch.no_grad():
        images, text = bare_forward(model.backbone.clip, model.modalities, inputs)
        streams = {"video": inputs.frames, "parsing": inputs.parsing, "landmark": inputs.landmarks}
        ours = model.frame_embeddings(streams)
        described = model.backbone.encode_text(
            inputs.description_ids, inputs.description_mask, model.text_adapters
        )
    assert images.shape == (3 * 2 * 4, 16)
    assert torch.allclose(images, torch.cat([e.flatten(0, 1) for e in ours.values()]), atol=1e-5)
    assert text is not None and torch.allclose(text, described, atol=1e-5)


def test_step_benchmark_times_training_and_inference() -> None:
    results = [run_step_benchmark("full", mode, TINY, CPU) for mode in ("naive", "bf16")]
    for result in results:
        assert result.error is None
        assert result.train_clips_per_s > 0 and result.infer_clips_per_s > 0
        assert result.train_peak_gib is None  # CUDA only
    assert speedups(results)["full"] == pytest.approx(
        results[1].train_clips_per_s / results[0].train_clips_per_s
    )


def test_a_failing_case_is_reported_not_raised(monkeypatch) -> None:
    def broken(model):
        raise RuntimeError("no C compiler\nlong trace")

    monkeypatch.setattr(torch, "compile", broken)
    result = run_step_benchmark("base", "compiled", TINY, CPU)
    assert result.error == "RuntimeError: no C compiler"
    assert result.train_clips_per_s is None and result.infer_clips_per_s is None


@pytest.mark.parametrize(("mode", "batch", "error"), [("naive", 1, None), ("bf16", 4, "out")])
def test_only_the_naive_reference_shrinks_its_batch_to_fit(monkeypatch, mode, batch, error):
    def measure(result, variant, settings, device):
        if result.batch > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        result.train_clips_per_s = 1.0

    monkeypatch.setattr(gpu, "_measure", measure)
    result = run_step_benchmark("base", mode, StepSettings(batch=4), CPU)
    assert result.batch == batch
    assert (result.error or "").startswith(error or "") and bool(result.error) == bool(error)


def test_latency_compares_predict_with_the_bare_forward() -> None:
    base, full = (
        run_latency(v, backbone="tiny", image_size=32, frames=4, repeats=1, threads=1)
        for v in ("base", "full")
    )
    assert (base.bare_images, base.bare_text) == (4, False)
    assert (full.bare_images, full.bare_text) == (12, True)
    for result in (base, full):
        assert result.predict_cpu_ms > 0 and result.bare_cpu_ms > 0
        assert result.ratio == pytest.approx(result.predict_cpu_ms / result.bare_cpu_ms)


def test_memory_grows_with_the_batch_and_projects_linearly() -> None:
    result = run_memory("full", backbone="tiny", image_size=32, frames=8, batches=(2, 6))
    assert 0 < result.step_gib[0] < result.step_gib[1]
    assert result.per_clip_gib == pytest.approx((result.step_gib[1] - result.step_gib[0]) / 4)
    expected = result.resident_gib + result.fixed_gib + 32 * result.per_clip_gib
    assert result.projected_gib == pytest.approx(expected)
    # 3 streams x 8 frames of 3 x 32 x 32 float32 inputs alone take 295 KB per clip
    assert result.per_clip_gib * 2**30 > 3 * 8 * 3 * 32 * 32 * 4
    # resident memory counts the allocator's slack on top of the live tensors
    assert result.rss_step_gib[1] > 0 and result.rss_projected_gib > 0


def test_projection_from_two_batches_predicts_a_measured_larger_batch() -> None:
    # at 32 px the tiny model's fixed part dominates and the peak moves between phases
    check = check_projection(
        "full", backbone="tiny", image_size=64, frames=4, batches=(2, 4), check_batch=8
    )
    assert check.measured_gib > 0
    assert abs(check.error) < 0.05  # the tolerance docs/benchmarks.md states


def test_analytic_count_explains_the_activations_autograd_keeps() -> None:
    model = build_bench_model("full", "tiny", image_size=32, num_frames=4)
    adapters = model.visual_adapters["video"]

    def saved_bytes(images: int) -> int:
        kept: dict[int, int] = {}

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            kept[storage.data_ptr()] = storage.nbytes()
            return tensor

        pixels = torch.randn(images, 3, 32, 32)
        hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor)
        with hooks, torch.autocast("cpu", dtype=torch.bfloat16):
            model.backbone.encode_images([(pixels, adapters)])
        return sum(kept.values())

    per_image = (saved_bytes(3) - saved_bytes(1)) // 2
    vision = model.backbone.config.vision_config
    tokens = (32 // vision.patch_size) ** 2 + 1
    pooled_norm = 4 * vision.hidden_size + 8  # the CLS token's final LayerNorm
    assert per_image == tower_saved_bytes(vision, adapters, tokens) + pooled_norm


def test_pipeline_measures_both_packs_and_the_files(tmp_path: Path) -> None:
    report = run_pipeline((32,), synth_clips=5, clips=4, frames=4, workdir=tmp_path)
    sources = [r.source for r in report.results]
    assert sources == ["pack-jpeg", "pack-raw", "files"]
    jpeg, raw, _ = report.results
    assert all(r.clips_per_cpu_s > 0 and r.middle_fraction == 1.0 for r in report.results)
    # Leaving the rendering out can only raise the rate; it is the same clips' CPU time.
    assert all(r.clips_per_cpu_s_no_render > r.clips_per_cpu_s for r in report.results)
    assert raw.bytes_per_clip > jpeg.bytes_per_clip
    assert report.loader is None


def test_loader_counts_every_clip_after_the_first_batch(synth_packs: dict[str, Path]) -> None:
    from finecliper.bench.pipeline import _pack_dataset, _pack_records

    dataset = _pack_dataset(synth_packs["jpeg"], _pack_records(synth_packs["jpeg"]), 32, 4)
    result = measure_loader(dataset, workers=0, batch=3, batches=4, source="tiny")
    assert (result.clips, result.batch) == (12, 3) and result.clips_per_s > 0


def report_with(settings: dict, **sections) -> dict:
    return {"settings": settings, **sections}


def test_suite_reports_the_cpu_sections(tmp_path: Path) -> None:
    options = BenchOptions(
        variants=("base",),
        sections=("pipeline", "memory"),
        backbone="tiny",
        image_size=32,
        frames=4,
        pipeline_sizes=(32,),
        pipeline_clips=4,
        synth_clips=5,
        workdir=tmp_path / "work",
    )
    report = run_suite(options, out=tmp_path / "report.json")
    assert json.loads((tmp_path / "report.json").read_text()) == json.loads(json.dumps(report))
    assert len(report["pipeline"]["results"]) == 3 and len(report["memory"]["results"]) == 1
    text = format_report(report)
    assert "data pipeline, one worker" in text and "training memory" in text


def test_checks_apply_the_issues_targets_at_its_settings() -> None:
    target = {"backbone": "ViT-B/16", "frames": 16, "image_size": 224, "device": "cuda"}
    step = {
        "speedup": {"base": 7.0, "full": 5.0},
        "results": [
            {"variant": "full", "mode": "bf16", "batch": 32, "train_clips_per_s": 95.0,
             "train_peak_gib": 52.0},
            {"variant": "full", "mode": "bf16", "batch": 32, "train_clips_per_s": 70.0,
             "train_peak_gib": 21.0},
            {"variant": "base", "mode": "compiled", "batch": 32, "train_clips_per_s": 240.0,
             "train_peak_gib": 9.0},
            {"variant": "base", "mode": "naive", "batch": 32, "train_clips_per_s": 34.0,
             "train_peak_gib": 30.0},
        ],
    }  # fmt: skip
    pipeline = {
        "results": [
            {"source": "pack-jpeg", "image_size": 112, "clips_per_cpu_s": 61.0},
            {"source": "pack-raw", "image_size": 112, "clips_per_cpu_s": 70.0},
            {"source": "pack-jpeg", "image_size": 224, "clips_per_cpu_s": 41.0},
        ]
    }
    latency = {"results": [{"variant": "base", "ratio": 1.02}]}
    found = checks(
        report_with({**target, "batch": 32}, step=step, pipeline=pipeline, latency=latency)
    )
    assert {c.name: c.ok for c in found} == {
        "pipeline_per_worker_112": True,
        "pipeline_per_worker_224": False,
        "latency_ratio_base": True,
        "speedup_over_naive_base": True,
        "speedup_over_naive_full": False,
        "train_base_b32": False,
        "train_full_b32": True,
        "memory_full_b32_gib": True,
    }
    tiny = {**target, "backbone": "tiny", "batch": 32}
    assert [c.name for c in checks(report_with(tiny, step=step, pipeline=pipeline))] == [
        "pipeline_per_worker_112",  # model figures of another backbone are not checked
        "pipeline_per_worker_224",
    ]


def test_bench_command_prints_one_json_object_last(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    argv = "bench --device cpu --backbone tiny --image-size 32 --frames 4 --only latency,step"
    argv += " --variant base --modes naive --phases infer --steps 1 --repeats 1 --json --out"
    args = parser.parse_args([*argv.split(), str(tmp_path / "report.json")])
    assert args.handler(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert json.loads((tmp_path / "report.json").read_text()) == report  # kept up to date
    assert report.keys() == {"machine", "settings", "latency", "step", "checks"}
    assert report["machine"]["torch"] == torch.__version__
    (step,) = report["step"]["results"]
    assert step["infer_clips_per_s"] > 0 and step["train_clips_per_s"] is None
    assert report["latency"]["results"][0]["variant"] == "base" and report["checks"] == []
    text = format_report(report)  # what the command prints without --json
    assert "predict latency" in text and "speed-up over naive" in text
    assert CLASSES[0] == "happiness"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    ("mode", "checkpointing"), [("naive", False), ("bf16", True), ("compiled", False)]
)
def test_cuda_steps_run_in_every_mode(mode: str, checkpointing: bool) -> None:
    settings = StepSettings(backbone="tiny", image_size=32, frames=4, batch=4, steps=2, warmup=1)
    cuda = torch.device("cuda")
    result = run_step_benchmark("full", mode, settings, cuda, checkpointing=checkpointing)
    assert result.error is None, result.error
    assert result.train_peak_gib > 0 and result.infer_clips_per_s > 0
