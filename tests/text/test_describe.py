import argparse
import json

import numpy as np
import pytest
from text_fixtures import animate

from finecliper.data.records import ClipRecord, DatasetIndex
from finecliper.errors import ConfigError, FineCLIPERError
from finecliper.text.backends import BackendOptions
from finecliper.text.backends.template import TemplateBackend
from finecliper.text.commands import register
from finecliper.text.describe import (
    DescribeJob,
    in_shard,
    parse_shard,
    plan_items,
    validation_carve,
)
from finecliper.text.descriptions import load_descriptions
from finecliper.text.prompts import FIG3_LABELLED, FIG3_UNLABELLED, prompt_for

CLASSES = ("Happy", "Sad", "Surprise")


def folded_index(root, clips=6) -> DatasetIndex:
    """Two folds: clip i is a test clip of fold (i % 2) + 1 and a training clip of the other."""
    records = [
        ClipRecord(f"c{i}", root / f"c{i}", label=i % 3, split="train", num_frames=16)
        for i in range(clips)
    ]
    splits = {}
    for fold in (1, 2):
        splits[f"fold{fold}/train"] = [r for i, r in enumerate(records) if i % 2 + 1 != fold]
        splits[f"fold{fold}/test"] = [r for i, r in enumerate(records) if i % 2 + 1 == fold]
    return DatasetIndex("custom", root, CLASSES, splits)


def fixed_index(root) -> DatasetIndex:
    train = [
        ClipRecord("a", root / "a", 0, "train", 16),
        ClipRecord("b", root / "b", 1, "train", 16),
    ]
    test = [ClipRecord("c", root / "c", 2, "test", 16)]
    return DatasetIndex("custom", root, CLASSES, {"train": train, "test": test})


def write_landmarks(root, clip_ids, **moves):
    for i, clip_id in enumerate(clip_ids):
        folder = root / "clips" / clip_id
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "landmarks.npy", animate(16, brow_raise=3 + i % 3, **moves))


def template(root) -> TemplateBackend:
    return TemplateBackend(BackendOptions(landmarks_root=root))


class _PromptBackend(TemplateBackend):
    """The template backend, planned as if it took prompts (to see the prompt plan)."""

    uses_prompt = True


def test_fig3_prompt_with_and_without_the_annotation_line():
    labelled = FIG3_LABELLED.render("Sad")
    unlabelled = FIG3_UNLABELLED.render(None)
    assert labelled.endswith("For the given video, human-annotation: Sad")
    assert "human-annotation" not in unlabelled
    assert labelled.startswith(unlabelled)
    for requirement in ("1. Format:", "5. Don't include emotional words.", "6. Max 100 tokens."):
        assert requirement in unlabelled
    assert FIG3_LABELLED.sha256 != FIG3_UNLABELLED.sha256
    with pytest.raises(ConfigError):
        FIG3_LABELLED.render(None)


@pytest.mark.parametrize(
    ("policy", "training", "expected"),
    [
        ("train", True, FIG3_LABELLED),
        ("train", False, FIG3_UNLABELLED),
        ("all", False, FIG3_LABELLED),
        ("never", True, FIG3_UNLABELLED),
    ],
)
def test_prompt_policy(policy, training, expected):
    assert prompt_for(policy, training) is expected


def test_plan_gives_folded_clips_a_labelled_and_an_unlabelled_description(tmp_path):
    items = plan_items(
        folded_index(tmp_path), "train", _PromptBackend(BackendOptions(landmarks_root=tmp_path))
    )
    assert len(items) == 12
    for item in items:
        assert item.prompt.shows_label == (item.split == "train")
    assert {(i.record.clip_id, i.split) for i in items} == {
        (f"c{k}", split) for k in range(6) for split in ("train", "test")
    }


def test_plan_for_a_fixed_split_and_the_papers_policy(tmp_path):
    backend = _PromptBackend(BackendOptions(landmarks_root=tmp_path))
    default = plan_items(fixed_index(tmp_path), "train", backend)
    assert [(i.record.clip_id, i.split, i.prompt_id) for i in default] == [
        ("a", "train", "fig3-label"),
        ("b", "train", "fig3-label"),
        ("c", "test", "fig3-nolabel"),
    ]
    paper = plan_items(fixed_index(tmp_path), "all", backend)
    assert [i.prompt_id for i in paper] == ["fig3-label"] * 3
    assert plan_items(fixed_index(tmp_path), "never", backend)[0].prompt_id == "fig3-nolabel"


def test_plan_describes_the_validation_carve_label_free(tmp_path):
    """A fixed split's validation clips are carved from train: they are evaluated, so they
    need a label-free description as well as the labelled one (issue #14)."""
    from finecliper.data.run_data import carve_validation

    train = [ClipRecord(f"t{i}", tmp_path / f"t{i}", i % 3, "train", 16) for i in range(30)]
    index = DatasetIndex("custom", tmp_path, CLASSES, {"train": train, "test": train[:0]})
    val = validation_carve(index, seed=7, val_fraction=0.2)
    assert val == {r.clip_id for r in carve_validation(train, 0.2, 7)[1]} and len(val) == 6
    backend = _PromptBackend(BackendOptions(landmarks_root=tmp_path))
    items = plan_items(index, "train", backend, evaluated=val)
    unlabelled = {i.record.clip_id for i in items if i.prompt_id == "fig3-nolabel"}
    labelled = {i.record.clip_id for i in items if i.prompt_id == "fig3-label"}
    assert unlabelled == val and labelled == {r.clip_id for r in train}
    both = plan_items(index, "train", backend, evaluated={r.clip_id for r in train})
    assert len(both) == 60 and {i.split for i in both if i.record.clip_id == "t0"} == {
        "train",
        "test",
    }


def test_backend_without_prompt_gets_one_item_per_clip(tmp_path):
    items = plan_items(folded_index(tmp_path), "train", template(tmp_path))
    assert [i.prompt_id for i in items] == ["landmark-template"] * 6
    assert all(i.split == "train" for i in items)


def test_shards_partition_the_clips():
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "1", "a/b", "0/0"):
        with pytest.raises(ConfigError):
            parse_shard(bad)
    ids = [f"clip{i}" for i in range(50)]
    owners = [[s for s in range(3) if in_shard(i, (s, 3))] for i in ids]
    assert all(len(o) == 1 for o in owners)


def _lines(path):
    return sorted(path.read_text(encoding="utf-8").splitlines())


def test_describe_job_records_every_field(tmp_path):
    write_landmarks(tmp_path, ["a", "b", "c"])
    out = tmp_path / "d.jsonl"
    items = plan_items(fixed_index(tmp_path), "train", template(tmp_path))
    summary = DescribeJob(template(tmp_path), out, dataset="custom", batch_size=2).run(items, False)
    assert (summary.described, summary.errors) == (3, 0)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    first = rows[0]
    assert first["clip_id"] == "a" and first["label"] == "Happy" and first["split"] == "train"
    assert first["label_shown"] is False and first["backend"] == "template"
    assert first["prompt_id"] == "landmark-template" and len(first["prompt_sha256"]) == 64
    assert first["frame_indices"] == list(range(16))
    assert "thresholds" in first["generation"] and first["error"] is None
    assert "The eyebrows rise" in first["text"]


class _Interrupted(TemplateBackend):
    """Killed (Ctrl-C) on its third batch."""

    calls = 0

    def describe(self, requests):
        type(self).calls += 1
        if self.calls == 3:
            raise KeyboardInterrupt
        return super().describe(requests)


def test_interrupted_job_resumes_to_the_uninterrupted_result(tmp_path):
    index = folded_index(tmp_path, clips=10)
    write_landmarks(tmp_path, [f"c{i}" for i in range(10)])
    items = plan_items(index, "train", template(tmp_path))
    reference = tmp_path / "reference.jsonl"
    DescribeJob(template(tmp_path), reference, dataset="custom", batch_size=3).run(items, False)

    out = tmp_path / "resumed.jsonl"
    with pytest.raises(KeyboardInterrupt):
        DescribeJob(
            _Interrupted(BackendOptions(landmarks_root=tmp_path)),
            out,
            dataset="custom",
            batch_size=3,
        ).run(items, False)
    with open(out, "a", encoding="utf-8") as handle:
        handle.write('{"clip_id": "c9", "text": "torn')  # a line cut by the kill
    summary = DescribeJob(template(tmp_path), out, dataset="custom", batch_size=3).run(items, False)
    assert summary.already_done == 6 and summary.described == 4
    assert _lines(out) == _lines(reference)


def test_failed_clips_are_recorded_and_retried_on_rerun(tmp_path):
    write_landmarks(tmp_path, ["a", "c"])  # "b" has no landmarks yet
    out = tmp_path / "d.jsonl"
    items = plan_items(fixed_index(tmp_path), "train", template(tmp_path))
    summary = DescribeJob(template(tmp_path), out, dataset="custom").run(items, False)
    assert (summary.described, summary.errors) == (2, 1)
    assert summary.first_errors[0].startswith("b: ")
    assert "clips/b: no landmarks.npy" in summary.first_errors[0]
    failed = next(json.loads(line) for line in out.read_text().splitlines() if '"b"' in line)
    assert failed["text"] is None and "no landmarks.npy" in failed["error"]

    write_landmarks(tmp_path, ["b"])
    summary = DescribeJob(template(tmp_path), out, dataset="custom").run(items, False)
    assert (summary.already_done, summary.described, summary.errors) == (2, 1, 0)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["clip_id"] for r in rows) == ["a", "b", "c"]
    assert all(r["error"] is None for r in rows)


def test_shard_outputs_merge_to_the_full_run(tmp_path):
    index = folded_index(tmp_path, clips=12)
    write_landmarks(tmp_path, [f"c{i}" for i in range(12)])
    items = plan_items(index, "train", template(tmp_path))
    full = tmp_path / "full.jsonl"
    DescribeJob(template(tmp_path), full, dataset="custom").run(items, False)
    merged = []
    for shard in range(3):
        part = tmp_path / f"part{shard}.jsonl"
        mine = [i for i in items if in_shard(i.record.clip_id, (shard, 3))]
        DescribeJob(template(tmp_path), part, dataset="custom").run(mine, False)
        merged += _lines(part)
    assert sorted(merged) == _lines(full)


def _parser():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser


def test_describe_cli_with_the_template_backend_on_a_manifest(tmp_path, capsys):
    from PIL import Image
    from text_fixtures import clip_frames

    rows = ["path,label,split"]
    for name, label, split in (("x", "Happy", "train"), ("y", "Sad", "test")):
        folder = tmp_path / name
        folder.mkdir()
        for t, frame in enumerate(clip_frames(4, 32, seed=1)):
            Image.fromarray(frame).save(folder / f"{t:03d}.jpg")
        rows.append(f"{name},{label},{split}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "classes.txt").write_text("Happy\nSad\n")
    write_landmarks(tmp_path, ["x", "y"])
    out = tmp_path / "out.jsonl"
    args = _parser().parse_args(
        [
            "describe",
            "custom",
            str(tmp_path / "manifest.csv"),
            "--out",
            str(out),
            "--backend",
            "template",
            "--json",
        ]
    )
    assert args.handler(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["described"] == 2 and summary["backend"] == "template"
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(r["clip_id"], r["split"], r["label"]) for r in rows} == {
        ("x", "train", "Happy"),
        ("y", "test", "Sad"),
    }


def test_load_descriptions_picks_per_split(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [
        {"clip_id": "a", "text": "labelled a", "label_shown": True},
        {"clip_id": "a", "text": "plain a", "label_shown": False},
        {"clip_id": "b", "text": "labelled b", "label_shown": True},
        {"clip_id": "c", "text": "raw c", "refined_text": "refined c"},
        {"clip_id": "d", "text": None, "error": "timed out"},
        {"clip_id": "e", "text": "raw e", "refined_text": ""},
        {"clip_id": 7, "text": "numeric id"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    train = load_descriptions(path, split="fold1/train")
    assert train == {"a": "labelled a", "b": "labelled b", "c": "refined c", "7": "numeric id"}
    test = load_descriptions(path, split="fold1/test")
    assert test == {"a": "plain a", "c": "refined c", "7": "numeric id"}
    assert load_descriptions(path, split="test", allow_label_leak=True)["b"] == "labelled b"
    assert load_descriptions(path)["a"] == "plain a"


def test_load_descriptions_names_a_malformed_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"clip_id": "a", "text": "x"}\n{"text": "no id"}\n')
    with pytest.raises(FineCLIPERError, match=r"d\.jsonl:2: missing field\(s\) clip_id"):
        load_descriptions(path)
    path.write_text("not json\n")
    with pytest.raises(FineCLIPERError, match=r"d\.jsonl:1: not valid JSON"):
        load_descriptions(path)


def test_describe_synthdfer_offline_with_the_template_backend(tmp_path, capsys):
    from finecliper.data.synth import generate_synth
    from finecliper.text.lexicon import find_emotion_words

    generate_synth(
        tmp_path / "synth", clips=14, seed=0, size=32, frames=16, workers=1, progress=False
    )
    out = tmp_path / "template.jsonl"
    args = _parser().parse_args(
        [
            "describe",
            "synth",
            str(tmp_path / "synth"),
            "--out",
            str(out),
            "--backend",
            "template",
            "--json",
        ]
    )
    assert args.handler(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["items"], summary["described"], summary["errors"]) == (14, 14, 0)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["clip_id"] for r in rows) == [f"synth_{i:05d}" for i in range(14)]
    assert all(r["frame_indices"] == list(range(16)) for r in rows)
    assert not any(find_emotion_words(r["text"]) for r in rows)
    # Every clip is a test clip in one of SynthDFER's folds and a training clip in the others.
    assert {r["split"] for r in rows} == {"train"} and not any(r["label_shown"] for r in rows)
    texts = load_descriptions(out, split="fold1/test")
    assert len(texts) == 14


def test_resuming_into_a_file_of_another_model_is_refused(tmp_path):
    write_landmarks(tmp_path, ["a", "b", "c"])
    out = tmp_path / "d.jsonl"
    out.write_text(
        json.dumps(
            {
                "clip_id": "a",
                "prompt_id": "landmark-template",
                "text": "x",
                "backend": "video-llava",
                "model": "LanguageBind/Video-LLaVA-7B-hf",
            }
        )
        + "\n"
    )
    items = plan_items(fixed_index(tmp_path), "train", template(tmp_path))
    with pytest.raises(ConfigError, match="holds descriptions by video-llava"):
        DescribeJob(template(tmp_path), out, dataset="custom").run(items, False)
    backend = template(tmp_path)
    out.write_text(
        json.dumps(
            {
                "clip_id": "a",
                "prompt_id": "landmark-template",
                "text": "x",
                "backend": "template",
                "model": backend.model_id,
                "prompt_sha256": "0" * 64,
            }
        )
        + "\n"
    )
    with pytest.raises(ConfigError, match="other wording"):
        DescribeJob(backend, out, dataset="custom").run(items, False)
