import pytest

from chimein.eval.metrics import best_threshold, decision_metrics, pr_curve, turn_category
from chimein.mentions import addressed_person, addresses_assistant, asks_the_assistant, mentions_assistant


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


@pytest.mark.parametrize("text,mention,address", [
    ("bot, how many syllables in a haiku?", True, True),
    ("@assistant what's 2+2", True, True),
    ("hey bot can you check", True, True),
    ("can the AI check the time zone", True, True),
    ("is it 5 or 7, bot?", True, True),
    ("lol the bot was slow yesterday", True, False),
    ("the robot vacuum is stuck", False, False),
    ("my assistant manager is annoying", True, False),
    ("both of us", False, False),
    ("said the chimeinator", False, False),
])
def test_mention_and_address_rules(text, mention, address):
    assert mentions_assistant(text) is mention
    assert addresses_assistant(text) is address


@pytest.mark.parametrize("text,asks", [
    ("bot, how many syllables in a haiku?", True),
    ("assistant are you even there?", True),
    ("is it 5 or 7, bot?", True),
    ("bot, sit this one out", False),  # addressed, asks nothing
    ("thanks bot", False),
    ("did the bot answer you yesterday?", False),  # a question, but about the bot
    ("Sam, are you coming?", False),
])
def test_asking_the_assistant_directly(text, asks):
    assert asks_the_assistant(text) is asks


def test_turn_categories():
    assert turn_category(True, "bot, what time?") == "addressed"
    assert turn_category(True, "no idea honestly") == "volunteered"
    assert turn_category(False, "thanks bot") == "mentioned_silent"
    assert turn_category(False, "sushi obviously") == "chitchat"


@pytest.mark.parametrize("text, person", [
    ("kira: is btrfs stable yet?", "kira"),
    ("Ben, are you coming?", "Ben"),
    ("you coming tonight, ben?", "ben"),
    ("hey sam, did the router arrive", "sam"),
    ("@maria can you review my PR", "maria"),
    ("can you review this @maria", "maria"),
    ("@here standup in 5", None),
    ("bot, what is the capital of Peru?", None),
    ("Ana and Ben are coming too", None),
    ("error: could not find module", None),
    ("what's the deepest point of the ocean?", None),
])
def test_addressed_person(text, person):
    assert addressed_person(text, ["kira", "Ben", "sam", "Ana"]) == person
