"""classification_summary against a hand-worked confusion matrix."""

import math

import pytest

from assd.metrics import classification_summary


def test_hand_made_confusion():
    # confusion (rows true, cols predicted), classes 0,1,2:
    #   0: [4, 1, 0]   recall 4/5
    #   1: [2, 2, 0]   recall 2/4
    #   2: [0, 0, 1]   recall 1/1
    y_true = [0] * 5 + [1] * 4 + [2]
    y_pred = [0, 0, 0, 0, 1, 0, 0, 1, 1, 2]  # true 0s, true 1s, true 2
    s = classification_summary(y_true, y_pred)
    assert s["n"] == 10
    assert s["accuracy"] == pytest.approx(7 / 10)
    assert s["per_class_recall"] == pytest.approx({0: 0.8, 1: 0.5, 2: 1.0})
    assert s["balanced_accuracy"] == pytest.approx((0.8 + 0.5 + 1.0) / 3)
    # precision: 0 -> 4/6, 1 -> 2/3, 2 -> 1/1; F1 = 2PR/(P+R)
    f1 = [2 * p * r / (p + r) for p, r in [(4 / 6, 0.8), (2 / 3, 0.5), (1.0, 1.0)]]
    assert s["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert s["majority_class"] == 0 and s["majority_baseline"] == pytest.approx(0.5)
    assert s["beats_baseline"] is True


def test_model_that_only_says_no_does_not_beat_baseline():
    y_true = ["no"] * 94 + ["yes"] * 6
    s = classification_summary(y_true, ["no"] * 100, majority_class="no")
    assert s["accuracy"] == pytest.approx(0.94) == pytest.approx(s["majority_baseline"])
    assert s["beats_baseline"] is False
    assert s["balanced_accuracy"] == pytest.approx(0.5)
    assert s["per_class_recall"]["yes"] == 0.0


def test_known_class_absent_from_rows_has_nan_recall_and_is_left_out_of_the_mean():
    s = classification_summary([0, 1], [0, 1], labels=[0, 1, 2])
    assert math.isnan(s["per_class_recall"][2])
    assert s["balanced_accuracy"] == 1.0


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="one length"):
        classification_summary([0, 1], [0])
    with pytest.raises(ValueError, match="at least one"):
        classification_summary([], [])
