import json

from chimein.assistant.backends.rules import MentionBackend, SilentBackend
from chimein.eval.run import evaluate, evaluate_models, summarize


def test_teacher_forced_eval_of_the_rule_baselines(sample_conversations):
    silent = summarize(evaluate(SilentBackend(), sample_conversations))
    assert silent["recall"] == 0.0 and silent["balanced_accuracy"] == 0.5 and silent["false_interjection_rate"] == 0.0
    mention_records = evaluate(MentionBackend(), sample_conversations)
    # c1: "bot, how many syllables" (gold speak, named) -> tp; c2: "lol the bot was slow" (gold silent) -> fp;
    # c2: "no clue tbh" (gold speak, not named) -> fn.
    m = summarize(mention_records)
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 1)
    assert m["per_turn_category"]["addressed"]["accuracy"] == 1.0
    assert m["per_turn_category"]["volunteered"]["accuracy"] == 0.0
    assert m["per_turn_category"]["mentioned_silent"]["accuracy"] == 0.0
    assert m["missed_address_rate"] == 0.0
    assert set(m["per_conversation_category"]) == {"addressed", "stuck"}


class Scored:
    supports_probability = True
    threshold = 0.5
    answer_direct_questions = False
    decide_only = False

    def new_state(self):
        return None

    def decide(self, messages, state=None, threshold=None):
        from chimein.assistant.core import Decision

        p = 0.9 if "bot" in messages[-1].content or "clue" in messages[-1].content else 0.2
        speak = p >= (self.threshold if threshold is None else threshold)
        return Decision(speak, "x" if speak and not self.decide_only else "", p)


def test_probability_backends_get_a_threshold_sweep_and_a_plot(tmp_path, sample_conversations):
    report = evaluate_models(
        ["scored"], sample_conversations, tmp_path, ["x.jsonl"], lambda _: Scored(), with_similarity=False
    )["scored"]
    assert report["best_threshold_f1"] > 0 and report["pr_curve"]
    assert (tmp_path / "pr_curve-scored.png").stat().st_size > 1000
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["models"]["scored"]["f1"] == report["f1"]
    assert len((tmp_path / "turns-scored.jsonl").read_text().splitlines()) == 7


class Counting(Scored):
    """Scored, counting its decisions; raises (like a kill) once ``fail_after`` decisions are made."""

    def __init__(self, fail_after=None):
        self.calls, self.fail_after = 0, fail_after

    def decide(self, messages, state=None, threshold=None):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt
        self.calls += 1
        return super().decide(messages, state, threshold)


def test_an_interrupted_eval_resumes_after_the_last_whole_conversation(tmp_path, sample_conversations):
    convs = sample_conversations * 3  # 6 conversations, 21 decisions
    full = evaluate_models(["scored"], convs, tmp_path / "full", ["x"], lambda _: Counting(), with_similarity=False)
    first = convs[0].user_turns
    try:
        evaluate_models(
            ["scored"], convs, tmp_path / "cut", ["x"], lambda _: Counting(fail_after=first + 2), with_similarity=False
        )
    except KeyboardInterrupt:
        pass
    # the first conversation was written whole; the half-done second one is dropped and redone
    assert len((tmp_path / "cut" / "turns-scored.jsonl").read_text().splitlines()) == first
    again = Counting()
    resumed = evaluate_models(["scored"], convs, tmp_path / "cut", ["x"], lambda _: again, with_similarity=False)
    assert again.calls == sum(c.user_turns for c in convs) - first
    assert resumed["scored"] == full["scored"] | {"latency_s": resumed["scored"]["latency_s"]}
    # different data: nothing is reused
    fresh = Counting()
    evaluate_models(["scored"], convs[:2], tmp_path / "cut", ["x"], lambda _: fresh, with_similarity=False)
    assert fresh.calls == sum(c.user_turns for c in convs[:2])


def test_decisions_only_takes_the_decision_from_p_speak_without_replies(sample_conversations):
    full = evaluate(Scored(), sample_conversations)
    quick = evaluate(Scored(), sample_conversations, decisions_only=True)
    assert [r.speak for r in quick] == [r.speak for r in full] and any(r.speak for r in quick)
    assert all(r.reply == "" for r in quick) and any(r.reply for r in full)
    scored = Scored()
    evaluate(scored, sample_conversations, decisions_only=True)
    assert scored.decide_only is False  # the flag is the backend's again after the run


class Unsure(Scored):
    """p_speak 0.1 everywhere; the direct-question rule is the only reason to speak (the stuck rule is off)."""

    answer_direct_questions = True
    stuck_threshold = None

    def decide(self, messages, state=None, threshold=None):
        from chimein.assistant.core import Decision, should_speak

        speak = should_speak(0.1, self.threshold if threshold is None else threshold, messages, stuck_threshold=None)
        return Decision(speak, "x" if speak and not self.decide_only else "", 0.1)


def test_eval_applies_the_direct_question_rule_with_and_without_replies(sample_conversations):
    spoken = lambda records: [r.text for r in records if r.speak]  # noqa: E731
    assert spoken(evaluate(Unsure(), sample_conversations, decisions_only=True)) == [
        "bot, how many syllables does a haiku have?"
    ]
    assert spoken(evaluate(Unsure(), sample_conversations)) == ["bot, how many syllables does a haiku have?"]


def test_reply_similarity_uses_the_packaged_embedding_model():
    from chimein.eval.run import embedding_similarity

    sim = embedding_similarity()
    close, far = sim(
        ["The Challenger Deep, about 11 km down."] * 2,
        ["It's the Challenger Deep in the Mariana Trench.", "Let's get pizza tonight."],
    )
    assert close > 0.5 > far


def test_summary_splits_named_turns_from_volunteering():
    from chimein.eval.run import TurnRecord

    def rec(text, gold, speak):
        return TurnRecord("c", "", 0, "Ana", text, gold, "", speak, "", None, 0.0, 0, "")

    records = [
        rec("bot, capital of Peru?", True, True),  # named: tp
        rec("the bot was slow lol", False, True),  # named: fp
        rec("no clue tbh", True, True),  # volunteer: tp
        rec("idk either", True, False),  # volunteer: fn
        rec("sushi obviously", False, True),  # volunteer: fp (an interjection)
        rec("pizza?", False, False),  # volunteer: tn
    ]
    report = summarize(records)
    assert report["named_f1"] == round(2 * 0.5 * 1.0 / 1.5, 4)
    assert report["volunteer"]["tp"] == 1 and report["volunteer"]["fn"] == 1 and report["volunteer"]["fp"] == 1
    assert report["volunteer_f1"] == 0.5 and report["volunteer"]["false_interjection_rate"] == 0.5
