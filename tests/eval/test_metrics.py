import pytest

from chimein.eval.metrics import best_threshold, decision_metrics, pr_curve, turn_category


def test_confusion_and_rates_on_a_hand_made_case():
    gold = [True, True, False, False, False, True]
    pred = [True, False, True, False, False, True]
    m = decision_metrics(gold, pred)
    assert (m.tp, m.fn, m.fp, m.tn) == (2, 1, 1, 2)
    assert m.precision == pytest.approx(2 / 3) and m.recall == pytest.approx(2 / 3) and m.f1 == pytest.approx(2 / 3)
    assert m.false_interjection_rate == pytest.approx(1 / 3)
    assert m.balanced_accuracy == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_never_speaking_has_balanced_accuracy_one_half():
    m = decision_metrics([True, False, False, False], [False] * 4)
    assert m.accuracy == 0.75 and m.balanced_accuracy == 0.5 and m.f1 == 0.0


def test_threshold_sweep_finds_the_separating_threshold():
    gold = [False, False, True, True]
    scores = [0.1, 0.3, 0.6, 0.9]
    t, f1 = best_threshold(gold, scores)
    assert f1 == 1.0 and 0.3 < t <= 0.6
    curve = pr_curve(gold, scores)
    assert curve[0]["recall"] == 1.0 and curve[-1]["precision"] == 1.0


def test_turn_categories():
    assert turn_category(True, "bot, what time?") == "addressed"
    assert turn_category(True, "no idea honestly") == "volunteered"
    assert turn_category(False, "thanks bot") == "mentioned_silent"
    assert turn_category(False, "sushi obviously") == "chitchat"
