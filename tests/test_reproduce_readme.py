"""The README's "Reproduce the paper" commands, run as written through ``finecliper.cli.main``.

FERV39k and MAFW fixture trees are built from the real split metadata (tests/data/fixtures.py),
two clips per class and split (MAFW: per class and fold) so that the seeded validation carve is
not empty, with frames that show the astronaut's face from scikit-image so that MediaPipe finds
it. The commands are the README's, with small sizes only:
- ``prepare faces`` without ``--workers 8`` and with ``--max-frames 8``;
- ``describe --backend video-llava`` with ``--model`` a tiny randomly initialised Video-LLaVA
  saved to disk (``tiny_video_llava`` of tests/text) instead of the 7B one, on the CPU, with
  ``--max-new-tokens 8``;
- ``train`` with the tiny backbone of tests/conftest.py, 1 epoch, 4 frames of 32 px, batches of
  8, no loader workers.
Every validation and test clip must have a label-free description, every test clip must be
evaluated (none skipped or unreadable), and the headline must be the epoch chosen on validation.
About 20 s on an idle 2-core machine, 30-50 s on a busy one.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("mediapipe")
pytest.importorskip("skimage.data")

TESTS = Path(__file__).parent
sys.path[:0] = [str(TESTS / "data"), str(TESTS / "text")]

from fixtures import Tree, build_ferv39k, build_mafw  # noqa: E402
from text_fixtures import tiny_video_llava  # noqa: E402

from finecliper.cli import main  # noqa: E402
from finecliper.config import load_config  # noqa: E402
from finecliper.data.run_data import read_run_data  # noqa: E402
from finecliper.face.cache import clip_dir, read_status  # noqa: E402
from finecliper.text.descriptions import description_text, read_jsonl  # noqa: E402

pytestmark = pytest.mark.slow

CLIPS_PER_CLASS = 2
TEST_SPLIT = {"ferv39k": "test", "mafw": "fold1/test"}  # the presets' fold (MAFW: fold 1)
TRAIN_SPLIT = {"ferv39k": "train", "mafw": "fold1/train"}


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory) -> Path:
    import torch

    torch.manual_seed(0)
    return tiny_video_llava(tmp_path_factory.mktemp("video_llava"))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch) -> Path:
    """The run folders go to ``runs/`` of the working folder, as for a user."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*argv: str) -> None:
    assert main(list(argv)) == 0, argv


def size_overrides(backbone: Path) -> list[str]:
    return [
        f"model.backbone={backbone}",
        "train.epochs=1",
        "data.num_frames=4",
        "data.image_size=32",
        "train.batch_size=8",
        "data.num_workers=0",
    ]


def new_run(before: set[Path]) -> Path:
    """The one run folder a ``train`` command added under ``runs/``."""
    (created,) = set(Path("runs").iterdir()) - before
    return created


def existing_runs() -> set[Path]:
    return set(Path("runs").iterdir()) if Path("runs").is_dir() else set()


def prepare_and_describe(dataset: str, tree: Tree, llava: Path) -> None:
    """README steps 1-3: check the data, prepare faces and their QC montage, describe, refine."""
    root = str(tree.root)
    run("data", "check", dataset, root)
    run("prepare", "faces", dataset, root, "--out", "cache", "--max-frames", "8")
    run("prepare", "qc", "cache", "--out", "qc.png")
    assert Path("qc.png").stat().st_size > 0
    run(
        "describe", dataset, root, "--backend", "video-llava", "--out", "desc.jsonl",
        "--batch-size", "32", "--model", str(llava), "--device", "cpu", "--max-new-tokens", "8",
    )  # fmt: skip
    run("refine", "desc.jsonl", "--out", "refined.jsonl")


def train_run(dataset: str, tree: Tree, backbone: Path, *overrides: str) -> Path:
    before = existing_runs()
    run("train", dataset, f"data.root={tree.root}", *overrides, *size_overrides(backbone))
    return new_run(before)


def label_free_ids(path: str) -> set[str]:
    """Clips with a usable description written without their label."""
    return {
        row["clip_id"]
        for row in read_jsonl(path)
        if not row.get("label_shown") and description_text(row) is not None
    }


def predictions(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "predictions.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def check_run(run_dir: Path, dataset: str, tree: Tree, descriptions: str) -> None:
    """Text on every evaluated clip, every test clip evaluated, headline chosen on validation."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test_ids = {clip.clip_id for clip in tree.split_clips(TEST_SPLIT[dataset])}
    train_ids = {clip.clip_id for clip in tree.split_clips(TRAIN_SPLIT[dataset])}
    data = read_run_data(load_config(run_dir / "config.yaml"))
    val_ids = {record.clip_id for record in data.val}
    assert {record.clip_id for record in data.test} == test_ids
    assert val_ids and val_ids <= train_ids
    assert (metrics["val_clips"], metrics["train_clips"]) == (
        len(val_ids),
        len(train_ids) - len(val_ids),
    )
    described = label_free_ids(descriptions)
    assert not (val_ids | test_ids) - described, "evaluated clips without label-free text"

    assert metrics["test_clips"] == metrics["evaluated_clips"] == len(test_ids)
    assert metrics["skipped_test_clips"] == [] and metrics["unusable_train_clips"] == []
    assert sum(metrics["test"]["unreadable"].values()) == 0
    assert {row["clip_id"] for row in predictions(run_dir)} == test_ids

    best_val = metrics["selection"]["best_val"]
    assert metrics["headline"] == "best_val" and "val_uar" in best_val
    assert metrics["headline_epoch"] == best_val["epoch"]
    assert (metrics["uar"], metrics["war"]) == (best_val["uar"], best_val["war"])


def check_modalities(run_dir: Path, modalities: tuple[str, ...]) -> None:
    """Each test clip had every modality of the variant (a missing one gets weight 0)."""
    for row in predictions(run_dir):
        assert all(float(row[f"w_{name}"]) > 0 for name in modalities), row


def check_faces(tree: Tree) -> None:
    for clip in tree.clips:
        assert read_status(clip_dir(Path("cache"), clip.clip_id))["status"] == "ok", clip


def test_ferv39k_reproduce_commands(workdir, tiny_llava, tiny_backbone):
    tree = build_ferv39k(workdir / "FERV39k", clips_per_class=CLIPS_PER_CLASS, face=True)
    prepare_and_describe("ferv39k", tree, tiny_llava)
    check_faces(tree)
    run_dir = train_run(
        "ferv39k", tree, tiny_backbone,
        "data.faces_cache=cache", "data.descriptions=refined.jsonl", "model.variant=full",
    )  # fmt: skip
    check_run(run_dir, "ferv39k", tree, "refined.jsonl")
    check_modalities(run_dir, ("video", "parsing", "landmark", "text"))


def test_mafw_reproduce_commands_and_caption_row(workdir, tiny_llava, tiny_backbone):
    tree = build_mafw(workdir / "MAFW", clips_per_class=CLIPS_PER_CLASS, face=True)
    prepare_and_describe("mafw", tree, tiny_llava)
    check_faces(tree)
    run_dir = train_run(
        "mafw", tree, tiny_backbone,
        "data.faces_cache=cache", "data.descriptions=refined.jsonl", "model.variant=full",
    )  # fmt: skip
    check_run(run_dir, "mafw", tree, "refined.jsonl")
    check_modalities(run_dir, ("video", "parsing", "landmark", "text"))

    # Table 3, "MAFW (video caption)": MAFW's own captions as the descriptions, zero-shot.
    run("describe", "mafw", str(tree.root), "--backend", "mafw-captions", "--out", "cap.jsonl")
    assert label_free_ids("cap.jsonl") == {clip.clip_id for clip in tree.clips}
    zero_shot = train_run(
        "mafw", tree, tiny_backbone,
        "data.descriptions=cap.jsonl", "model.variant=high", "model.objective=zero_shot",
    )  # fmt: skip
    check_run(zero_shot, "mafw", tree, "cap.jsonl")
    assert json.loads((zero_shot / "metrics.json").read_text())["variant"] == "high"
