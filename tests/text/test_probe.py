"""Counterfactual verification: the label-leak probe, the LLM judge and the manual-review loop."""

import argparse
import csv
import json
import re

import numpy as np
import pytest
from text_fixtures import ChatServer, completion, prompt_of

from finecliper.errors import ConfigError
from finecliper.text import probe
from finecliper.text.commands import register
from finecliper.text.lexicon import find_emotion_words

CLASSES = ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear")
# Emotion words injected per class, as an MLLM that saw the label would write them.
INJECTED = {
    "Happy": ("happy", "joy"),
    "Sad": ("sad", "sorrow"),
    "Neutral": ("neutral", "calmness"),
    "Angry": ("angry", "anger"),
    "Surprise": ("surprised", "astonishment"),
    "Disgust": ("disgusted", "revulsion"),
    "Fear": ("frightened", "fear"),
}
MOVEMENTS = [
    "the eyebrows rise slightly",
    "the eyebrows are drawn down",
    "the eyes widen",
    "the eyes narrow",
    "the mouth opens",
    "the lips press together",
    "the lip corners pull upwards",
    "the lip corners turn downwards",
    "the head tilts to one side",
    "the head stays still",
    "the eyes blink twice",
    "the chin lifts",
]
PER_CLASS = 12


def leaky_descriptions(cue_for_happy: str = "") -> list[dict]:
    """Movements drawn independently of the label, plus injected emotion phrases."""
    rng = np.random.default_rng(0)
    rows = []
    for label in CLASSES:
        adjective, noun = INJECTED[label]
        for k in range(PER_CLASS):
            first, second, third = (MOVEMENTS[i].capitalize() for i in rng.permutation(12)[:3])
            cue = f" {cue_for_happy}" if label == "Happy" else ""
            text = (
                f"The person in the video displays a {adjective} expression. {first}. "
                f"{second}, suggesting a feeling of {noun}.{cue} {third}."
            )
            rows.append({"clip_id": f"{label}{k:02d}", "text": text, "label": label})
    return rows


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _refine(*argv, capsys=None):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["refine", *map(str, argv), "--json"])
    assert args.handler(args) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_leakage_report_high_before_refinement_near_chance_after(tmp_path, capsys):
    source = tmp_path / "generated.jsonl"
    _write_jsonl(source, leaky_descriptions())
    report = _refine(source, "--out", tmp_path / "refined.jsonl", capsys=capsys)

    before, after = report["probe"]["before"]["train_cv"], report["probe"]["after"]["train_cv"]
    assert before["chance"] == pytest.approx({"majority": 1 / 7, "uniform": 1 / 7})
    assert before["n"] == after["n"] == 7 * PER_CLASS
    assert before["accuracy"] > 0.95
    assert after["accuracy"] < 1 / 7 + 0.12
    assert report["texts_with_emotion_words"] == {"before": 84, "after": 0}
    assert report["probe"]["flagged"] == 0
    rows = [json.loads(line) for line in (tmp_path / "refined.jsonl").read_text().splitlines()]
    assert all(set(r) >= {"clip_id", "text", "label", "refined_text", "leak_flagged"} for r in rows)
    assert all(find_emotion_words(r["refined_text"]) == [] for r in rows)
    # The movements stay: every refined text keeps three movement sentences.
    assert all(len(re.findall(r"\.", r["refined_text"])) == 3 for r in rows)
    saved = json.loads((tmp_path / "refined.leakage.json").read_text())
    assert saved["probe"]["after"] == report["probe"]["after"]


def _flagged_run(tmp_path, capsys, *extra):
    source = tmp_path / "generated.jsonl"
    _write_jsonl(source, leaky_descriptions("The cheeks bunch up under the eyes."))
    out = tmp_path / "refined.jsonl"
    return source, out, _refine(source, "--out", out, *extra, capsys=capsys)


def test_label_cue_surviving_refinement_is_flagged_and_exported(tmp_path, capsys):
    _, out, report = _flagged_run(tmp_path, capsys)
    flagged = [json.loads(line) for line in out.read_text().splitlines()]
    flagged = [r for r in flagged if r["leak_flagged"]]
    assert report["probe"]["flagged"] == len(flagged) >= PER_CLASS - 2
    assert {r["label"] for r in flagged} == {"Happy"}
    with open(tmp_path / "refined.review.csv", encoding="utf-8", newline="") as handle:
        exported = list(csv.DictReader(handle))
    assert len(exported) == len(flagged)
    assert tuple(exported[0]) == probe.REVIEW_COLUMNS
    assert exported[0]["flagged_by"] == "probe" and exported[0]["probe_prediction"] == "Happy"
    assert float(exported[0]["probe_confidence"]) >= 0.6
    assert exported[0]["reviewed_text"] == exported[0]["refined_text"]


def test_reviewed_csv_is_applied_on_rerun(tmp_path, capsys):
    source, out, _ = _flagged_run(tmp_path, capsys)
    review = tmp_path / "refined.review.csv"
    with open(review, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[0].update(decision="edit", reviewed_text="The eyes blink twice.")
    rows[1].update(decision="drop")
    rows[2].update(decision="keep")
    reviewed = tmp_path / "reviewed.csv"
    with open(reviewed, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=probe.REVIEW_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

    report = _refine(source, "--out", out, "--apply-review", reviewed, capsys=capsys)
    assert (report["review"]["edit"], report["review"]["drop"], report["review"]["keep"]) == (
        1,
        1,
        1,
    )
    lines = {r["clip_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert lines[rows[0]["clip_id"]]["refined_text"] == "The eyes blink twice."
    assert lines[rows[0]["clip_id"]]["review"] == "edited"
    assert lines[rows[1]["clip_id"]]["refined_text"] == ""
    assert lines[rows[2]["clip_id"]]["review"] == "kept"
    with open(review, encoding="utf-8", newline="") as handle:
        still_open = {row["clip_id"] for row in csv.DictReader(handle)}
    assert not still_open & {rows[i]["clip_id"] for i in range(3)}


def test_review_csv_errors_name_the_line(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("clip_id,prompt_id,decision,reviewed_text\na,,keep,\nb,,maybe,\n")
    with pytest.raises(ConfigError, match=r"r\.csv:3: decision 'maybe'"):
        probe.import_review(path)
    path.write_text("clip_id,prompt_id,decision,reviewed_text\na,,edit,\n")
    with pytest.raises(ConfigError, match=r"r\.csv:2: decision 'edit' with an empty"):
        probe.import_review(path)
    path.write_text("clip_id,text\na,x\n")
    with pytest.raises(ConfigError, match="lacks column"):
        probe.import_review(path)


def test_review_of_an_unknown_line_is_an_error(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    _write_jsonl(source, leaky_descriptions())
    review = tmp_path / "r.csv"
    review.write_text("clip_id,prompt_id,decision,reviewed_text\nnope,,drop,\n")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["refine", str(source), "--out", str(tmp_path / "o.jsonl"), "--apply-review", str(review)]
    )
    with pytest.raises(ConfigError, match=r"r\.csv:2: no line with clip_id 'nope'"):
        args.handler(args)


def _judge_answer(payload):
    """A judge that names a class when the description carries one of its emotion words."""
    text = prompt_of(payload).split("Which one")[0].lower()  # the description, not the choices
    for label, words in INJECTED.items():
        if any(re.search(rf"\b{w}\b", text) for w in words):
            return 200, completion(f"It is {label.lower()}."), 0
    return 200, completion("I cannot tell from the movements."), 0


def test_llm_judge_through_a_chat_server(tmp_path, capsys):
    source = tmp_path / "generated.jsonl"
    _write_jsonl(source, leaky_descriptions())
    with ChatServer(_judge_answer) as server:
        report = _refine(
            source,
            "--out",
            tmp_path / "o.jsonl",
            "--judge-backend",
            "openai-compatible",
            "--judge-url",
            server.url,
            "--judge-model",
            "judge",
            capsys=capsys,
        )
    judge = report["probe"]["judge"]
    assert judge["before"]["accuracy"] == 1.0 and judge["before"]["unanswered"] == 0
    assert judge["after"]["accuracy"] == 0.0 and judge["after"]["unanswered"] == 84
    assert judge["after"]["chance"]["uniform"] == pytest.approx(1 / 7)
    assert len(server.requests) == 2 * 84
    assert "Answer with exactly one word" in prompt_of(server.requests[0][0])


def test_parse_judgement_takes_the_first_class_named():
    assert probe.parse_judgement("Probably sad, not happy.", CLASSES) == "Sad"
    assert probe.parse_judgement("FEAR", CLASSES) == "Fear"
    assert probe.parse_judgement("unclear", CLASSES) is None


def test_probe_is_skipped_with_too_few_texts():
    data = probe.ProbeInput(["a b", "c d", "e f"], ["Happy", "Sad", "Sad"])
    result = probe.run_probe(data)
    assert "need >= 2 classes" in result.summary["skipped"]
    assert result.predictions == [None, None, None]


def test_held_out_texts_are_scored_by_a_probe_fit_on_training_texts():
    rows = leaky_descriptions()
    texts, labels = [r["text"] for r in rows], [r["label"] for r in rows]
    training = [k % 4 != 0 for k in range(len(rows))]
    result = probe.run_probe(probe.ProbeInput(texts, labels, training), folds=3)
    assert result.summary["folds"] == 3
    assert result.summary["held_out"]["n"] == training.count(False)
    assert result.summary["held_out"]["accuracy"] > 0.9


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from finecliper.data.synth import generate_synth

    out = tmp_path_factory.mktemp("synth")
    generate_synth(out, clips=70, seed=0, size=32, frames=8, workers=1, progress=False)
    return out


def test_synthdfer_leak_injected_then_refined_away(synth, tmp_path, capsys):
    pristine = [
        json.loads(line) for line in (synth / "descriptions.jsonl").read_text().splitlines()
    ]
    injected = []
    for row in pristine:
        adjective, noun = INJECTED[row["label"]]
        text = (
            f"The person in the video displays a {adjective} expression. {row['text']} "
            f"Overall, the combination of these movements conveys a sense of {noun}."
        )
        injected.append({**row, "text": text})
    source = tmp_path / "injected.jsonl"
    _write_jsonl(source, injected)
    report = _refine(source, "--out", tmp_path / "refined.jsonl", capsys=capsys)
    refined = [json.loads(line) for line in (tmp_path / "refined.jsonl").read_text().splitlines()]
    # Refinement removes exactly the injected leak and keeps every movement sentence.
    assert [r["refined_text"] for r in refined] == [r["text"] for r in pristine]
    baseline = probe.run_probe(
        probe.ProbeInput([r["text"] for r in pristine], [r["label"] for r in pristine])
    ).summary["train_cv"]["accuracy"]
    before = report["probe"]["before"]["train_cv"]["accuracy"]
    after = report["probe"]["after"]["train_cv"]["accuracy"]
    assert before > 0.9
    # What is left is what the movements themselves say about the class (SynthDFER's
    # descriptions are informative by design), not the injected words.
    assert after == baseline < before - 0.2


def test_template_descriptions_of_synthdfer_carry_the_movements(synth):
    from finecliper.text.backends import BackendOptions
    from finecliper.text.backends.template import TemplateBackend

    rows = [json.loads(line) for line in (synth / "descriptions.jsonl").read_text().splitlines()]
    backend = TemplateBackend(BackendOptions(landmarks_root=synth))
    texts = [backend.describe_clip(r["clip_id"]).text for r in rows]
    assert all(texts) and not any(find_emotion_words(t) for t in texts)
    result = probe.run_probe(probe.ProbeInput(texts, [r["label"] for r in rows]))
    assert result.summary["train_cv"]["accuracy"] > 0.5  # chance is 1/7
