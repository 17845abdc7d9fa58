"""Pseudonyms for private chats (chimein/importers/pseudonymize.py)."""

import pytest

from chimein.importers.pseudonymize import FAKE_NAMES, Pseudonymizer
from tests.importers import SAMPLES, broken_json, imported, turns


def test_one_fake_name_per_person_everywhere_they_are_named():
    names = Pseudonymizer({"Ana Lima": {"ana.l"}, "Ben": set()}, keep={"chimein"})
    ana, ben = names.name("Ana Lima"), names.name("Ben")
    assert ana != ben and {ana, ben} <= set(FAKE_NAMES) and names.name("Ana Lima") == ana
    assert names.text("@ana.l ask Ben, or ANA LIMA, or just Ana") == f"@{ana} ask {ben}, or {ana}, or just {ana}"
    assert (
        names.text("ben: ok? Benjamin and Bento are someone else") == f"{ben}: ok? Benjamin and Bento are someone else"
    )
    assert (
        names.text("chimein, what time is it? @chimein") == "chimein, what time is it? @chimein"
    )  # the assistant stays


def test_unknown_handles_get_fakes_of_their_own_and_group_mentions_stay():
    names = Pseudonymizer({"Ana": set()})
    text = names.text("@marta_n and @Marta_N, @here @everyone")
    fake = names.name("@marta_n")
    assert text == f"@{fake} and @{fake}, @here @everyone" and fake not in ("Ana", names.name("Ana"))
    assert names.text("@chimein_bot what's the time?") == "@chimein_bot what's the time?"  # a bot's handle


def test_phone_numbers_and_email_addresses_are_masked():
    names = Pseudonymizer({"Ana": set()})
    assert (
        names.text("mail ana.lima+trip@mail.example.co.uk or call +49 170 1234567 / (415) 555-2671")
        == "mail <email> or call <phone> / <phone>"
    )
    # not phone numbers: times, years, prices, a version
    assert names.text("at 10:40 on 2024-01-14, 1500 EUR, v2.3.1") == "at 10:40 on 2024-01-14, 1500 EUR, v2.3.1"
    german = Pseudonymizer({"Ana": set()}, region="DE")
    assert german.text("ruf an: 0170 1234567") == "ruf an: <phone>"


def test_fake_names_never_reuse_a_real_name_of_the_chat():
    names = Pseudonymizer({FAKE_NAMES[0]: set(), "Zed": set()})
    assert FAKE_NAMES[0] not in (names.name(FAKE_NAMES[0]), names.name("Zed"))


def test_the_telegram_exporters_own_handle_names_them(tmp_path):
    export, _ = broken_json(
        SAMPLES / "telegram_full_export.json",
        tmp_path / "result.json",
        lambda data: data["chats"]["list"][1]["messages"][1].update(text="@marta_n wall is open"),
        '"id": 78',
    )
    (conversation,) = turns(imported("telegram", export, chats=["Climbing crew"], pseudonymize=True))
    marta = conversation[1][0]  # who wrote "see you at 7"
    assert conversation[0][1] == f"@{marta} wall is open" and "Marta" not in repr(conversation)


def test_a_bad_region_names_the_flag():
    with pytest.raises(ValueError, match="--phone-region XX"):
        Pseudonymizer({}, region="XX")


def test_an_imported_chat_keeps_no_real_name_number_or_address():
    plain = imported("whatsapp", "whatsapp_android_us.txt", assistant="Chimein")
    hidden = imported("whatsapp", "whatsapp_android_us.txt", assistant="Chimein", pseudonymize=True)
    text = repr(turns(hidden))
    for secret in ("Ana", "Lima", "Ben", "415", "555", "2671", "0198", "ana.lima@example.com", "14155552671"):
        assert secret not in text, secret
    assert "Chimein, how much is a metro ticket" in text  # the assistant's name keeps its meaning
    # the same shape: same people in the same places
    real = [[n for n, _ in c] for c in turns(plain)]
    fake = [[n for n, _ in c] for c in turns(hidden)]
    mapping = dict(zip(sum(real, []), sum(fake, [])))
    assert [[mapping[n] for n in c] for c in real] == fake and len(set(mapping.values())) == len(mapping)
    assert turns(hidden)[1][2][1] == f"@{mapping['+1 415 555 2671']} you still coming?"  # a number's @mention
