"""Does the group look stuck on a fact? The signals of WHEN-TO-SPEAK rule 2, as plain rules.

"Someone asks and the others answer 'no idea', 'not sure', guess with a question mark, or disagree without
resolving it." A small model rarely learns these from a few hundred examples and misses them in other
people's chats, while the phrases themselves are few and stable across
writers and languages. The rule only says the moment *looks* stuck; the runtime still asks the model
(``core.should_speak`` lowers the threshold there, it does not force a reply).

This module imports nothing else from chimein.
"""

from __future__ import annotations

import re

# "I don't know" in the ways people type it, in the languages the data covers.
NOT_KNOWING = re.compile(
    r"(no idea|\bidk\b|\bi (really |honestly )?(don'?t|do not) know\b|\bdunno\b|\bnot sure\b|\bno clue\b|not a clue"
    r"|\bbeats me\b|\bstumped\b|\bi forget\b|can'?t remember|don'?t remember|\bblanked\b|\bnever sure\b"
    r"|\bnot certain\b|now i'?m (confused|not sure|unsure|doubting)|doubting myself|i'?m unsure"
    r"|\bni idea\b|\bno s[eé]\b|no estoy segur[oa]|keine ahnung|wei(ß|ss) (ich )?(es )?nicht|bin mir nicht sicher"
    r"|n[aã]o sei\b|\bsei l[aá]\b|n[aã]o fa[cç]o ideia|n[aã]o tenho certeza|aucune id[ée]e|je (ne )?sais (pas|plus)"
    r"|pas s[uû]re?\b|non lo so|non ne ho idea|pata nahi|nahi pata|tidak tahu|tidak yakin|nggak tahu|gak tau"
    r"|nie wiem|nie mam poj[eę]cia|bilmiyorum|emin de[gğ]ilim|geen idee|weet ik niet|niet zeker)",
    re.IGNORECASE,
)
# How far back a question may be for a "don't know" to be an answer to it.
LOOKBACK = 6


def looks_stuck(texts: list[str]) -> bool:
    """The last message says its writer does not know, shortly after someone asked something.

    ``texts``: the recent user messages, oldest first, the one being decided on last.
    """
    if not texts or not NOT_KNOWING.search(texts[-1]):
        return False
    return any("?" in t for t in texts[-1 - LOOKBACK : -1])
