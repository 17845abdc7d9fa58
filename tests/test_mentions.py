"""chimein.mentions: who a message names or addresses."""

import pytest

from chimein.mentions import addressed_person, addresses_assistant, asks_the_assistant, mentions_assistant


@pytest.mark.parametrize(
    "text,mention,address",
    [
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
    ],
)
def test_mention_and_address_rules(text, mention, address):
    assert mentions_assistant(text) is mention
    assert addresses_assistant(text) is address


@pytest.mark.parametrize(
    "text,asks",
    [
        ("bot, how many syllables in a haiku?", True),
        ("assistant are you even there?", True),
        ("is it 5 or 7, bot?", True),
        ("bot, sit this one out", False),  # addressed, asks nothing
        ("thanks bot", False),
        ("did the bot answer you yesterday?", False),  # a question, but about the bot
        ("Sam, are you coming?", False),
        # requests without a question mark, as IRC-style chat writes them
        ("assistant, which release", True),
        ("assistant, could you send me the link to that", True),
        ("bot can you check the logs", True),
        ("assistant, tell us what changed in 2.0", True),
        ("bot, explain the difference between a mutex and a semaphore", True),
        ("hey bot, please summarise the thread", True),
        ("@assistant check the logs", True),
        ("send me the link, bot", True),
        ("can the AI check the time zone", True),
        # addressed or mentioned, but not asked
        ("ok bot, sit this one out", False),
        ("bot, stop", False),
        ("thanks bot, that helped", False),
        ("did the bot answer you?", False),
        ("the bot was slow yesterday", False),
        ("the bot is done, how about lunch", False),
        ("@maria can you review my PR", False),
        ("my assistant manager, tell me about it", False),
    ],
)
def test_asking_the_assistant_directly(text, asks):
    assert asks_the_assistant(text) is asks


@pytest.mark.parametrize(
    "text, person",
    [
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
    ],
)
def test_addressed_person(text, person):
    assert addressed_person(text, ["kira", "Ben", "sam", "Ana"]) == person
