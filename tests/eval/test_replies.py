"""Grading what the assistant says: the facts check against gold replies, marker leaks, the language, the judge."""

import pytest

from chimein.eval.replies import facts_check, marker_leak, parse_judgement, quantities, reply_metrics, same_language


@pytest.mark.parametrize(
    "reply,gold,grade",
    [
        # the invented facts, against what a reference says
        ("The Berlin Wall was dismantled in 2013.", "It fell on 9 November 1989.", "wrong"),
        ("Chicken is safe at 120°F.", "Cook chicken to 165°F (74°C) inside.", "wrong"),
        ("A piano has 87 keys.", "A standard piano has 88 keys.", "wrong"),
        ("The moon is about 180 miles away.", "About 384,400 km (238,900 miles) on average.", "wrong"),
        (
            "It takes about 3 hours and 15 minutes.",
            "About 2 hours 15 minutes.",
            "wrong",
        ),  # one number right, one wrong
        ("4 g a day, not 8 g.", "The maximum is 4 g in 24 hours (8 x 500 mg tablets), not 8 g.", "correct"),
        # the same facts stated right, in other words and other number formats
        ("It came down in November 1989.", "It fell on 9 November 1989.", "correct"),
        ("88 keys: 52 white and 36 black.", "A standard piano has 88 keys.", "correct"),
        ("Die Zugspitze ist 2962 Meter hoch.", "Die Zugspitze ist 2.962 m hoch.", "correct"),
        ("Seventeen, in three lines.", "A haiku has 17 syllables.", "correct"),
        ("Roughly 2.5 million light-years.", "Andromeda is about 2,500,000 light-years away.", "correct"),
        # names and yes/no when the gold has no number
        ("That's Titan, Saturn's biggest moon.", "It's Titan, Saturn's largest moon.", "correct"),
        ("No, it is not safe to drink.", "Yes, tap water in Lisbon is safe to drink.", "wrong"),
        ("Yes, it's fine to drink.", "Yes, tap water in Lisbon is safe to drink.", "correct"),
        ("Good question, it depends on many things.", "It's Titan, Saturn's largest moon.", "incomplete"),
        # an honest non-answer is never wrong
        ("I'm not sure about that one, sorry.", "It fell on 9 November 1989.", "unsure"),
    ],
)
def test_facts_check(reply, gold, grade):
    assert facts_check(reply, gold).grade == grade


def test_quantities_read_units_and_separators():
    got = {(q.value, q.unit) for q in quantities("165°F (74 °C), 4 g, 2,962 m hoch, 2.5 million, 12k, 50%")}
    assert {(165.0, "f"), (74.0, "c"), (4.0, "g"), (2962.0, "m"), (2.5e6, ""), (12e3, ""), (50.0, "%")} <= got


@pytest.mark.parametrize(
    "reply,leak",
    [
        ("Lima. (silence)", "(silence)"),
        ("3018: (Response)", "(Response)"),
        ("Lima.<|im_end|>", "<|im_end|>"),
        ("Lima.\nBen: thanks", "Ben:"),
        ("At 10:30 on Monday, Ben.", None),
        ("Silence is golden.", None),
    ],
)
def test_marker_leak_anywhere_in_a_reply(reply, leak):
    assert marker_leak(reply, {"Ben", "Ana"}) == leak


def test_same_language():
    assert (
        same_language("Die Zugspitze ist fast dreitausend Meter hoch.", "Wie hoch ist die Zugspitze eigentlich?")
        is True
    )
    assert (
        same_language("The Zugspitze is almost three thousand metres high.", "Wie hoch ist die Zugspitze eigentlich?")
        is False
    )
    assert same_language("Yes.", "Is it?") is None  # too short to tell


def test_judge_answers_are_parsed_or_refused_with_the_reason():
    assert parse_judgement('Sure. {"grade": "Wrong", "reason": "2013 is not 1989"}').grade == "wrong"
    with pytest.raises(ValueError, match="not one of"):
        parse_judgement('{"grade": "meh"}')
    with pytest.raises(ValueError, match="no JSON"):
        parse_judgement("correct")


def test_reply_metrics_shares():
    m = reply_metrics(["correct", "wrong", "unsure", "correct"], leaks=1, words=[4, 6], languages=[True, None, False])
    assert m["correct"] == 0.5 and m["wrong_or_harmful"] == 0.25 and m["marker_leaks"] == 1
    assert m["mean_words"] == 5.0 and m["same_language"] == 0.5


def test_yes_or_no_against_the_gold_comes_before_the_numbers():
    assert (
        facts_check(
            "No, in the UK riding two abreast is not allowed.", "Yes, the Highway Code allows riding two abreast."
        ).grade
        == "wrong"
    )
    assert (
        facts_check("Yes, 10x is better than 8x.", "Not necessarily: 10x brings birds closer, 8x is steadier.").grade
        == "wrong"
    )
