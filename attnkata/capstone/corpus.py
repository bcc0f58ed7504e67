"""The capstone's training text: small stories written by a seeded generator.

No public-domain book was at hand offline, so the corpus is made here, from word lists
and sentence patterns written for this repository, and dedicated to the public domain
(CC0 1.0) together with this file. ``python -m attnkata.capstone.corpus`` writes
``data/corpus.txt`` again, byte for byte (``random.Random(SEED)``; nothing else varies).

The text is plain lowercase ASCII with a little structure a tiny model can learn and a
reader can check at a glance: who went where, counting that adds up ("she had three
apples and found two more, so she had five apples."), the days of the week in order,
and a few sentences about queries, keys and values. The last paragraphs (``VAL_FRACTION``
of the bytes, cut at a paragraph break) are the held-out validation split.
"""

from __future__ import annotations

import random
from pathlib import Path

SEED = 1729
TARGET_BYTES = 240_000
VAL_FRACTION = 0.1
PATH = Path(__file__).with_name("data") / "corpus.txt"

NAMES = ("ada", "ben", "cora", "dev", "emil", "fay", "gus", "hana", "ivo", "june", "kai",
         "lena", "milo", "nora", "otto", "pia", "quin", "rosa", "sami", "tess")
SHE = {"ada", "cora", "fay", "hana", "june", "lena", "nora", "pia", "rosa", "tess"}
ANIMALS = ("cat", "dog", "fox", "owl", "hen", "goat", "crow", "mole", "frog", "hare", "duck",
           "bear")
ADJ = ("small", "old", "quiet", "brave", "sleepy", "clever", "grey", "little", "happy",
       "hungry", "tired", "curious")
PLACES = ("the river", "the hill", "the market", "the old mill", "the forest", "the harbour",
          "the garden", "the bridge", "the school", "the library", "the well", "the station")
THINGS = ("apples", "pears", "stones", "books", "shells", "coins", "eggs", "keys", "letters",
          "plums", "cards", "rings")
WEATHER = ("it was raining", "the sun was warm", "the wind was cold", "snow was falling",
           "the sky was clear", "fog lay on the fields")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
           "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
           "seventeen", "eighteen", "nineteen", "twenty")
VERBS = ("walked", "ran", "went", "hurried", "wandered", "came back")
ATTENTION = (
    "a query asks a question and every key offers an answer.",
    "the scores are the dot products of the query with the keys.",
    "the softmax turns the scores into weights that add up to one.",
    "the output is the weighted sum of the values.",
    "a causal mask lets each token see only the tokens before it.",
    "the cache keeps the keys and values so that nothing is computed twice.",
    "a page holds the keys of a few tokens, and a table says where each page lives.",
    "grouped heads share their keys and values, so the cache is smaller.",
    "a rotation by the position makes the score depend on the distance.",
    "the draft guesses a few tokens and the target checks them all at once.",
)


def _pronoun(name: str) -> str:
    return "she" if name in SHE else "he"


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _count(n: int, thing: str) -> str:
    return f"{NUMBERS[n]} {thing[:-1] if n == 1 else thing}"


def _story(rng: random.Random) -> str:
    a, b = rng.sample(NAMES, 2)
    he_a = _pronoun(a)
    animal, adj = rng.choice(ANIMALS), rng.choice(ADJ)
    place, other = rng.sample(PLACES, 2)
    thing = rng.choice(THINGS)
    n, m = rng.randint(1, 10), rng.randint(1, 10)
    day = rng.randrange(7)
    parts = [
        f"on {DAYS[day]} {rng.choice(WEATHER)}.",
        f"{a} {rng.choice(VERBS)} to {place} with {_a(adj)} {animal}.",
    ]
    kind = rng.randrange(4)
    if kind == 0:  # adding up
        parts.append(f"{he_a} had {_count(n, thing)} and found {NUMBERS[m]} more, "
                     f"so {he_a} had {_count(n + m, thing)}.")
    elif kind == 1:  # giving away
        n, m = max(n, m), min(n, m)
        parts.append(f"{he_a} had {_count(n, thing)} and gave {NUMBERS[m]} to {b}, "
                     f"so {he_a} had {_count(n - m, thing)} left.")
    elif kind == 2:  # the next day
        parts.append(f"{b} said that tomorrow is {DAYS[(day + 1) % 7]}, "
                     f"and the day after is {DAYS[(day + 2) % 7]}.")
    else:  # counting
        start = rng.randint(0, 15)
        parts.append(f"the {animal} counted {', '.join(NUMBERS[start:start + 5])}.")
    ending = rng.randrange(3)
    if ending == 0:
        parts.append(f"then {b} met {a} at {other}, and they went home together.")
    elif ending == 1:
        parts.append(f"the {animal} fell asleep at {other}.")
    else:
        parts.append(rng.choice(ATTENTION))
    return " ".join(parts)


def generate(seed: int = SEED, target_bytes: int = TARGET_BYTES) -> str:
    """Paragraphs of one to three stories each, until ``target_bytes`` is reached."""
    rng = random.Random(seed)
    paragraphs: list[str] = []
    size = 0
    while size < target_bytes:
        paragraph = " ".join(_story(rng) for _ in range(rng.randint(1, 3)))
        paragraphs.append(paragraph)
        size += len(paragraph) + 1
    return "\n".join(paragraphs) + "\n"


def split(text: str, val_fraction: float = VAL_FRACTION) -> tuple[str, str]:
    """(train, validation): the validation split is the last paragraphs, cut at a newline."""
    cut = text.index("\n", int(len(text) * (1 - val_fraction))) + 1
    return text[:cut], text[cut:]


def load() -> str:
    return PATH.read_text(encoding="ascii")


if __name__ == "__main__":
    PATH.parent.mkdir(exist_ok=True)
    PATH.write_text(generate(), encoding="ascii")
    print(f"wrote {PATH} ({PATH.stat().st_size} bytes)")
