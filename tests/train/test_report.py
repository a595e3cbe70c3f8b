import csv

import numpy as np
import pytest
from PIL import Image

from finecliper.errors import FineCLIPERError
from finecliper.train.metrics import classification_report
from finecliper.train.paper import paper_score
from finecliper.train.report.page import write_run_report
from finecliper.train.report.plots import (
    mean_weights_per_class,
    plot_confusion,
    plot_fixed_weight_sweep,
    plot_modality_weights,
    plot_per_class_recall,
    plot_training_curves,
)
from finecliper.train.report.predictions_csv import read_predictions_csv, write_predictions_csv
from finecliper.train.report.tables import aggregate_folds, cv_markdown
from finecliper.train.selection import model_selection

CLASSES = ["Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear"]
MODALITIES = ["video", "parsing", "landmark", "text"]


def _fake_run(n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), size=n)
    logits = rng.normal(size=(n, len(CLASSES)))
    logits[np.arange(n), labels] += 1.5  # better than chance
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    weights = rng.dirichlet(np.ones(len(MODALITIES)), size=n)
    weights[::5, 1] = np.nan  # parsing missing for some clips
    clip_ids = [f"clip,{i:03d} a" for i in range(n)]  # commas and spaces must survive CSV
    return clip_ids, labels, probabilities.argmax(axis=1), probabilities, weights


def _metrics(pair):
    return None if pair is None else {"uar": pair[0], "war": pair[1]}


def _epoch(epoch, val, test, loss=1.0):
    return {
        "epoch": epoch,
        "train_loss": loss,
        "lr": 1e-3 / epoch,
        "val": _metrics(val),
        "test": _metrics(test),
    }


HISTORY = [
    _epoch(1, (0.50, 0.60), (0.40, 0.55), 2.0),
    _epoch(2, (0.70, 0.75), (0.52, 0.63), 1.5),
    _epoch(3, (0.70, 0.80), (0.58, 0.66), 1.2),  # ties epoch 2 on val UAR
    _epoch(4, (0.60, 0.70), (0.61, 0.69), 1.0),
    _epoch(5, (0.65, 0.72), (0.57, 0.67), 0.9),
]


def test_predictions_csv_round_trip(tmp_path):
    clip_ids, labels, predictions, probabilities, weights = _fake_run()
    classes = [*CLASSES[:-1], "Fear, mild"]  # a class name with a comma
    path = write_predictions_csv(
        tmp_path / "p.csv",
        clip_ids,
        labels,
        predictions,
        probabilities,
        classes,
        weights,
        MODALITIES,
    )
    back = read_predictions_csv(path)
    assert back.clip_ids == clip_ids
    assert back.classes == classes and back.modalities == MODALITIES
    np.testing.assert_array_equal(back.labels, labels)
    np.testing.assert_array_equal(back.predictions, predictions)
    np.testing.assert_allclose(back.probabilities, probabilities, atol=5e-7)
    np.testing.assert_allclose(back.weights, weights, atol=5e-7)  # NaN where missing
    assert np.isnan(back.weights[0, 1]) and not np.isnan(back.weights[1, 1])
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["label"] == classes[labels[0]]
    assert [int(r["correct"]) for r in rows] == (labels == predictions).astype(int).tolist()
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_predictions_csv_without_weights(tmp_path):
    clip_ids, labels, predictions, probabilities, _ = _fake_run(5)
    path = write_predictions_csv(
        tmp_path / "p.csv", clip_ids, labels, predictions, probabilities, CLASSES
    )
    back = read_predictions_csv(path)
    assert back.weights is None and back.modalities == []
    assert back.probabilities.shape == (5, len(CLASSES))


def test_predictions_csv_errors_name_the_problem(tmp_path):
    clip_ids, labels, predictions, probabilities, weights = _fake_run(4)
    with pytest.raises(FineCLIPERError, match="probabilities have shape"):
        write_predictions_csv(
            tmp_path / "p.csv", clip_ids, labels, predictions, probabilities[:, :3], CLASSES
        )
    with pytest.raises(FineCLIPERError, match="weights have shape"):
        write_predictions_csv(
            tmp_path / "p.csv",
            clip_ids,
            labels,
            predictions,
            probabilities,
            CLASSES,
            weights,
            MODALITIES[:2],
        )
    bad = tmp_path / "bad.csv"
    bad.write_text("clip_id,label,prediction,correct,p_Happy\na,Joy,Happy,0,0.5\n")
    with pytest.raises(FineCLIPERError, match=r"bad\.csv:2"):
        read_predictions_csv(bad)
    with pytest.raises(FineCLIPERError, match="not a predictions CSV"):
        bad.write_text("id,x\n")
        read_predictions_csv(bad)
    with pytest.raises(FineCLIPERError, match="cannot read"):
        read_predictions_csv(tmp_path / "missing.csv")


def test_model_selection_rules():
    selection = model_selection(HISTORY)
    assert selection["last"] == {"epoch": 5, "uar": 0.57, "war": 0.67}
    # Best val UAR 0.70 at epochs 2 and 3: the earliest wins; test metrics are reported.
    assert selection["best_val"] == {
        "epoch": 2,
        "uar": 0.52,
        "war": 0.63,
        "val_uar": 0.70,
        "val_war": 0.75,
    }
    assert selection["best_test_optimistic"] == {
        "epoch": 4,
        "uar": 0.61,
        "war": 0.69,
        "optimistic": True,
    }


def test_model_selection_without_validation_or_final_test():
    history = [{**h, "val": None} for h in HISTORY]
    history.append(_epoch(6, None, None))  # an epoch not evaluated on test
    selection = model_selection(history)
    assert selection["best_val"] is None
    assert selection["last"]["epoch"] == 5  # the last epoch evaluated on test
    with pytest.raises(FineCLIPERError, match="empty"):
        model_selection([])
    with pytest.raises(FineCLIPERError, match="test split"):
        model_selection([_epoch(1, (0.5, 0.5), None)])


def _folds(seed: int = 1, count: int = 5):
    rng = np.random.default_rng(seed)
    folds = []
    for fold in range(1, count + 1):
        rules = {
            rule: {
                "epoch": int(rng.integers(1, 31)),
                "uar": rng.uniform(0.55, 0.7),
                "war": rng.uniform(0.65, 0.8),
            }
            for rule in ("last", "best_val", "best_test_optimistic")
        }
        folds.append({"fold": fold, **rules})
    return folds


def test_aggregate_folds_matches_numpy():
    folds = _folds()
    folds[2]["best_val"] = None  # a fold trained without a validation split
    stats = aggregate_folds(folds)
    for rule in ("last", "best_val", "best_test_optimistic"):
        chosen = [f[rule] for f in folds if f[rule]]
        assert stats[rule]["folds"] == len(chosen)
        for metric in ("uar", "war"):
            values = np.array([c[metric] for c in chosen])
            assert stats[rule][metric]["mean"] == pytest.approx(values.mean())
            assert stats[rule][metric]["std"] == pytest.approx(values.std(ddof=1))
    single = aggregate_folds(folds[:1])
    assert single["last"]["uar"]["std"] is None
    assert aggregate_folds([{**folds[0], "best_val": None}])["best_val"] is None


def test_cv_markdown_dfew_full():
    folds = _folds()
    text = cv_markdown("dfew", "full", folds)
    assert "65.98" in text and "76.21" in text  # the paper's FineCLIPER*† on DFEW
    assert "59.61" in text  # Table 1 context: DFER-CLIP
    assert "optimistic" in text.lower() and "**Optimistic:**" in text
    uars = np.array([f["last"]["uar"] for f in folds]) * 100
    assert f"{uars.mean():.2f} ± {uars.std(ddof=1):.2f}" in text
    assert f"{uars.mean() - 65.98:+.2f}" in text
    for fold in folds:
        assert f"| {fold['fold']} | {100 * fold['last']['uar']:.2f} / " in text


def test_cv_markdown_without_paper_numbers_and_zero_shot():
    assert "reports no number" in cv_markdown("synth", "base", _folds(count=2))
    ferv = cv_markdown("ferv39k", "mid", [{**_folds(count=1)[0], "fold": None}])
    assert "| official split |" in ferv and "44.15" in ferv
    ours = [line for line in ferv.splitlines() if line.startswith("| ours")]
    assert len(ours) == 3 and not any("±" in line for line in ours)  # no std from one split
    assert "57.48" in cv_markdown("dfew", "high", _folds(count=2), zero_shot=True)
    assert paper_score("ferv39k", "base").uar == 42.88


def _assert_png(path, min_width=400, min_height=200):
    assert path.stat().st_size > 5000
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= min_width and image.height >= min_height
        assert image.width <= 3000 and image.height <= 3000
        # Not a blank canvas: the plot draws in more than a few colours.
        assert len(image.convert("RGB").getcolors(maxcolors=100000) or range(100000)) > 50
    assert not list(path.parent.glob(".*.tmp"))


def test_plots_write_readable_pngs(tmp_path):
    _, labels, predictions, _, weights = _fake_run(60)
    report = classification_report(labels, predictions, CLASSES)
    _assert_png(
        plot_confusion(
            report.confusion, CLASSES, tmp_path / "c.png", uar=report.uar, war=report.war
        )
    )
    _assert_png(plot_training_curves(HISTORY, tmp_path / "t.png"))
    _assert_png(plot_training_curves([{**h, "val": None} for h in HISTORY], tmp_path / "t2.png"))
    # Mid-training, before any test evaluation: still plots.
    _assert_png(plot_training_curves([{**h, "test": None} for h in HISTORY], tmp_path / "t3.png"))
    _assert_png(
        plot_per_class_recall(report.per_class_recall, tmp_path / "r.png", report.support, 0.5)
    )
    _assert_png(plot_modality_weights(weights, labels, CLASSES, MODALITIES, tmp_path / "w.png"))
    points = [
        {"video_weight": w, "uar": 0.5 + w / 10, "war": 0.6 + w / 20} for w in (0.1, 0.5, 0.9)
    ]
    _assert_png(plot_fixed_weight_sweep(points, {"uar": 0.62, "war": 0.7}, tmp_path / "s.png"))
    _assert_png(plot_fixed_weight_sweep(points, None, tmp_path / "s1.png", paper=False))


def test_modality_weights_with_an_empty_class(tmp_path):
    _, labels, _, _, weights = _fake_run(30)
    labels = np.where(labels == 5, 0, labels)  # no Disgust clip
    means, counts = mean_weights_per_class(weights, labels, len(CLASSES))
    assert counts[5] == 0 and np.isnan(means[5]).all()
    expected = np.nan_to_num(weights[labels == 1]).mean(axis=0)
    np.testing.assert_allclose(means[1], expected)
    _assert_png(plot_modality_weights(weights, labels, CLASSES, MODALITIES, tmp_path / "w.png"))
    with pytest.raises(FineCLIPERError, match="do not fit"):
        plot_modality_weights(weights[:, :2], labels, CLASSES, MODALITIES, tmp_path / "x.png")


def test_confusion_with_a_class_without_clips(tmp_path):
    confusion = np.array([[5, 1, 0], [0, 0, 0], [2, 0, 7]])
    report = classification_report([0] * 6 + [2] * 9, [0] * 5 + [1] + [0, 0] + [2] * 7, "abc")
    assert report.confusion == confusion.tolist()
    _assert_png(plot_confusion(confusion, ["a", "b", "c"], tmp_path / "c.png"), 300, 200)
    _assert_png(
        plot_per_class_recall(report.per_class_recall, tmp_path / "r.png", report.support),
        300,
        150,
    )


def test_write_run_report(tmp_path):
    clip_ids, labels, predictions, probabilities, weights = _fake_run(50)
    result = write_run_report(
        tmp_path / "run",
        clip_ids=clip_ids,
        labels=labels,
        predictions=predictions,
        probabilities=probabilities,
        classes=CLASSES,
        weights=weights,
        modalities=MODALITIES,
        history=HISTORY,
        dataset="dfew",
        variant="full",
        title="Test run",
    )
    expected = classification_report(labels, predictions, CLASSES)
    assert result.metrics["test"]["uar"] == pytest.approx(expected.uar)
    assert result.metrics["selection"]["best_val"]["epoch"] == 2
    paper = result.metrics["paper"]
    assert (paper["method"], paper["uar"], paper["war"]) == ("FineCLIPER*†", 65.98, 76.21)
    index = (tmp_path / "run" / "index.md").read_text()
    for name in ("confusion", "per_class_recall", "modality_weights", "training_curves"):
        assert f"({name}.png)" in index
        _assert_png(result.files[name], 300, 150)
    assert f"UAR {100 * expected.uar:.2f} %" in index and "Optimistic" in index
    assert "UAR 65.98 % · WAR 76.21 %" in index
    assert read_predictions_csv(result.files["predictions"]).clip_ids == clip_ids
