"""Pseudonyms for private chats: every person gets one consistent fake name, in the author field and wherever
the texts name them (full name, first name, @handle, ``nick:``); @handles of people the export does not
list get fake names of their own (bot handles, ``@here`` and the assistant's name stay); phone numbers and
e-mail addresses are masked.

    names = Pseudonymizer(people={"Ana Lima": {"ana.l"}, "Ben": set()}, keep={"chimein"})
    names.name("Ana Lima")                      # 'Amara'
    names.text("@ana.l call Ben on +49 170 1234567")  # '@Amara call Bruno on <phone>'

Phone numbers are found by ``phonenumbers`` (Google's libphonenumber): numbers with a country code anywhere,
national numbers as the ``region`` (default US) writes them.
"""

from __future__ import annotations

import re
from typing import Iterable

import phonenumbers

FAKE_NAMES = (
    "Amara Bruno Chiara Dmitri Elif Farid Greta Hiro Ines Jonas Kavya Lars Mei Nadia Omar Priya Quinn Rosa "
    "Sven Tomas Uma Viktor Wen Ximena Yusuf Zofia Aiko Bodhi Carmen Dev Esther Felix Gabriela Hamid Ilse "
    "Joao Kofi Leila Mateo Noor Otto Paloma Rafael Sanne Tariq Ulla Vera Wiebke Yara Zeno"
).split()
EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
HANDLE = re.compile(r"(?<![\w@])@([\w][\w.-]*\w|\w)")
GROUP_MENTIONS = {"here", "channel", "everyone", "room", "all"}
MIN_PHONE_DIGITS = 7  # shorter digit runs are years, times, prices, not phone numbers


class Pseudonymizer:
    def __init__(self, people: dict[str, set[str]], keep: Iterable[str] = (), region: str = "US"):
        """``people``: each person's name and the other spellings texts use for them (handles, user names);
        ``keep``: names never replaced (the assistant's)."""
        if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"--phone-region {region}: not a region code phonenumbers knows (e.g. US, DE, GB, IN, BR)"
            )
        self.region = region.upper()
        self.keep = {k.casefold() for k in keep}
        real = {n.casefold() for person, names in people.items() for n in {person, *names}}
        self.unused = [n for n in FAKE_NAMES if n.casefold() not in real]
        self.fakes: dict[str, str] = {}  # person -> fake name
        self.spelling: dict[str, str] = {}  # a spelling (casefolded) -> the person it names
        first_names: dict[str, set[str]] = {}
        for person, names in people.items():
            for spelling in {person, *names}:
                if spelling.strip() and spelling.casefold() not in self.keep:
                    self.spelling[spelling.casefold()] = person
            words = person.split()
            if len(words) > 1 and len(words[0]) > 2:
                first_names.setdefault(words[0].casefold(), set()).add(person)
            digits = re.sub(r"\D", "", person)
            if len(digits) >= MIN_PHONE_DIGITS and not re.search(r"[^\d\s+()\-.]", person):
                self.spelling[digits] = person  # a contact saved as a number is @mentioned by its digits
        for first, owners in first_names.items():  # "Ana" names "Ana Lima" unless two people share it
            if len(owners) == 1 and first not in self.spelling and first not in self.keep:
                self.spelling[first] = next(iter(owners))
        spellings = sorted(self.spelling, key=len, reverse=True)
        alternatives = "|".join(map(re.escape, spellings))
        self.names = re.compile(rf"(?<![\w@])@?({alternatives})(?!\w)", re.IGNORECASE) if spellings else None

    def name(self, person: str) -> str:
        """The fake name of a person, the same every time."""
        if person not in self.fakes:
            n = len(self.fakes)
            self.fakes[person] = self.unused[n] if n < len(self.unused) else f"Person {n + 1}"
        return self.fakes[person]

    def text(self, text: str) -> str:
        text = EMAIL.sub("<email>", text)
        if self.names is not None:  # before the phone numbers: a contact saved as a number is a person
            text = self.names.sub(self.replace_name, text)
        return HANDLE.sub(self.replace_handle, self.mask_phones(text))

    def replace_name(self, found: re.Match) -> str:
        at = "@" if found.group(0).startswith("@") else ""
        return at + self.name(self.spelling[found.group(1).casefold()])

    def replace_handle(self, found: re.Match) -> str:
        handle = found.group(1)
        folded = handle.casefold()
        # Bots are not people, and "@chimein_bot, ..." is how a Telegram group addresses its bot (bot user names
        # end in "bot" there): such handles stay, like @here and the assistant's own name.
        if folded in self.keep or folded in GROUP_MENTIONS or folded.endswith("bot") or handle in self.fakes.values():
            return found.group(0)
        return "@" + self.name("@" + handle.casefold())  # someone the export does not list: a fake of their own

    def mask_phones(self, text: str) -> str:
        out, end = [], 0
        for match in phonenumbers.PhoneNumberMatcher(text, self.region, leniency=phonenumbers.Leniency.POSSIBLE):
            if sum(c.isdigit() for c in match.raw_string) >= MIN_PHONE_DIGITS:
                out.append(text[end : match.start] + "<phone>")
                end = match.end
        return "".join(out) + text[end:]
