import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.metrics import confusion_matrix as sk_confusion

from finecliper.train.metrics import classification_report

CLASSES = ["Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear"]


@pytest.mark.parametrize("seed", range(20))
def test_uar_war_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    # Imbalanced labels like DFEW's (disgust is rare), sometimes with a class missing.
    weights = rng.dirichlet(np.ones(7) * 0.7)
    labels = rng.choice(7, size=n, p=weights)
    predictions = np.where(rng.random(n) < 0.5, labels, rng.integers(0, 7, size=n))
    report = classification_report(labels, predictions, CLASSES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns about classes with no clip
        expected_uar = balanced_accuracy_score(labels, predictions)
    assert report.uar == pytest.approx(expected_uar)
    assert report.war == pytest.approx(accuracy_score(labels, predictions))
    assert report.confusion == sk_confusion(labels, predictions, labels=range(7)).tolist()
    assert sum(report.support.values()) == n


def test_absent_class_has_no_recall_and_is_left_out_of_uar():
    report = classification_report([0, 0, 1], [0, 1, 1], ["a", "b", "c"])
    assert report.per_class_recall == {"a": 0.5, "b": 1.0, "c": None}
    assert report.uar == pytest.approx(0.75)


def test_rejects_mismatched_and_out_of_range():
    with pytest.raises(ValueError, match="labels"):
        classification_report([0, 1], [0], ["a", "b"])
    with pytest.raises(ValueError, match="outside"):
        classification_report([0, 2], [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="no clips"):
        classification_report([], [], ["a"])
