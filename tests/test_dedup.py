from chimein.dedup import DuplicateIndex, find_duplicates
from tests.helpers import conv


def test_near_duplicates_are_found_and_names_do_not_matter():
    a = conv(
        ("Ana", "shall we book the train to kyoto for saturday morning"),
        ("Ben", "yes the 9am one is cheaper than the later ones"),
    )
    b = conv(
        ("Zoe", "shall we book the train to kyoto for saturday morning"),
        ("Max", "yes the 9am one is cheaper than the later ones!"),
    )
    c = conv(("Ana", "my cat knocked over the plant again"), ("Ben", "classic cat behaviour honestly"))
    pairs = find_duplicates([a, b, c])
    assert [(p.first, p.second) for p in pairs] == [(0, 1)]
    index = DuplicateIndex([a])
    assert index.is_duplicate(b) and not index.is_duplicate(c)
