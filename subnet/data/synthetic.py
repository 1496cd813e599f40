"""A generated English-like corpus for local runs and tests (devnet, CI), with no download.

The text comes from a small probabilistic grammar over a few hundred words: topics with their
own templates and word pools, a cast of named characters repeated through each document, a
fixed "world" of facts (where each person lives, what they do, what they like) that holds across
documents, counting sequences and correct arithmetic. That gives a tiny model plenty to learn
in a minute of CPU training (function words, templates, copying names, facts, sums), so a
better-trained model measurably wins.

Everything is a pure function of a seed: each document is generated from its own id through
a `random.Random` seeded by sha256, never the global RNG, so every process agrees on it.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from subnet.data.types import Document, RoundData

PAGE_SPACE = 1_000_000_000  # synthetic "pages" a seed can choose from
MIN_SENTENCES = 2
MAX_SENTENCES = 150  # ~2,000 tokens with the tiny tokenizer

FEMALE_NAMES = (
    "Alice Anna Beatrice Clara Daisy Edith Emma Flora Grace Hannah Ida Julia Katherine Laura Lily "
    "Maria Nora Olivia Paula Rose Sarah Sophie Tessa Vera Zoe"
).split()
MALE_NAMES = (
    "Adam Ben Carl David Edward Felix George Henry Isaac Jack Kevin Leo Martin Nathan Oscar Peter "
    "Quentin Robert Samuel Thomas Victor Walter Xavier Yusuf Zachary"
).split()
CITIES = (
    "London Paris Berlin Madrid Rome Vienna Prague Lisbon Dublin Oslo Stockholm Helsinki Warsaw "
    "Athens Cairo Lagos Nairobi Tokyo Seoul Delhi Lima Quito Toronto Boston Denver Sydney Perth"
).split()
JOBS = (
    "teacher doctor baker farmer painter sailor carpenter nurse writer singer pilot engineer "
    "gardener fisherman tailor builder chemist lawyer librarian merchant"
).split()
ANIMALS = "cat dog horse rabbit parrot goat duck sheep fox owl turtle hamster".split()
FOODS = "bread soup cheese apples rice pasta cake fish beans honey oranges pie".split()
ITEMS = "book lamp chair basket hat kettle clock map rope bucket candle ladder".split()
COLORS = "red blue green yellow white black brown grey orange purple".split()
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = (
    "January February March April May June July August September October November December"
).split()
NUMBER_WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()
PLACES = "market park library station harbour school bakery garden museum river bridge square".split()
WEATHER = "sunny cloudy rainy windy foggy snowy warm cold".split()

TOPIC_WORDS = {
    "biography": ("kind quiet clever busy patient cheerful careful honest".split(),
                  "work family friends village town life job home".split()),
    "story": ("old small bright dark strange happy tired brave".split(),
              "road forest door window letter song journey night".split()),
    "arithmetic": ("simple easy long hard exact quick".split(),
                   "sum number answer problem total result".split()),
    "recipe": ("fresh hot sweet salty soft crisp".split(),
               "bowl oven pan spoon plate table".split()),
    "weather": ("heavy light strong mild bright grey".split(),
                "rain wind sky clouds sun storm".split()),
    "dialogue": ("good fine nice lovely funny busy".split(),
                 "day idea plan news question answer".split()),
}


@dataclass(frozen=True)
class Person:
    name: str
    female: bool
    city: str
    job: str
    food: str
    pet: str
    age: int

    @property
    def pronoun(self) -> str:
        return "she" if self.female else "he"

    @property
    def possessive(self) -> str:
        return "her" if self.female else "his"


@dataclass(frozen=True)
class World:
    """Facts that stay true across every document of one vocab seed, so a model can learn them."""

    people: tuple[Person, ...]
    city_river: dict
    city_population: dict


def seeded_rng(*parts: object) -> random.Random:
    """A private RNG seeded by sha256 of the parts: stable across processes and Python runs."""
    key = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:16], "big"))


@lru_cache(maxsize=8)
def make_world(vocab_seed: int = 0) -> World:
    rng = seeded_rng("world", vocab_seed)
    people = tuple(
        Person(name, name in FEMALE_NAMES, rng.choice(CITIES), rng.choice(JOBS), rng.choice(FOODS),
               rng.choice(ANIMALS), rng.randint(18, 80))
        for name in FEMALE_NAMES + MALE_NAMES
    )
    rivers = "Amber Silver Willow Stone Swift Long Clear Cold".split()
    return World(
        people=people,
        city_river={c: f"the {rng.choice(rivers)} River" for c in CITIES},
        city_population={c: rng.randint(2, 90) * 10_000 for c in CITIES},
    )


class _Doc:
    """Per-document state: the RNG, the cast, the topic's word pools."""

    def __init__(self, rng: random.Random, world: World, topic: str):
        self.rng = rng
        self.world = world
        self.topic = topic
        self.cast = rng.sample(world.people, rng.randint(2, 4))
        self.adjectives, self.nouns = TOPIC_WORDS[topic]

    def person(self) -> Person:
        # The first character is the protagonist: mentioned most, so copying them pays off.
        return self.cast[0] if self.rng.random() < 0.5 else self.rng.choice(self.cast)

    def other(self, person: Person) -> Person:
        return self.rng.choice([p for p in self.cast if p is not person])

    def pick(self, words: list[str] | tuple[str, ...]) -> str:
        return self.rng.choice(words)

    def adj(self) -> str:
        return self.pick(self.adjectives)

    def noun(self) -> str:
        return self.pick(self.nouns)


def _number(rng: random.Random, n: int) -> str:
    return NUMBER_WORDS[n] if n < len(NUMBER_WORDS) and rng.random() < 0.5 else str(n)


def _biography(d: _Doc) -> str:
    p = d.person()
    w = d.world
    options = (
        f"{p.name} is a {p.job} who lives in {p.city}.",
        f"{p.name} is {p.age} years old and works as a {p.job}.",
        f"Every morning {p.name} feeds {p.possessive} {p.pet} before going to work.",
        f"The favourite food of {p.name} is {p.food}.",
        f"{p.city} lies on {w.city_river[p.city]}, and {p.name} often walks along it.",
        f"{p.name} has a {d.adj()} {d.noun()} in {p.city}.",
        f"People say that {p.name} is a {d.adj()} {p.job}.",
        f"About {w.city_population[p.city]} people live in {p.city}.",
    )
    return d.pick(options)


def _story(d: _Doc) -> str:
    a = d.person()
    b = d.other(a)
    options = (
        f"One {d.pick(WEEKDAYS)}, {a.name} walked to the {d.pick(PLACES)} with {b.name}.",
        f"There they saw a {d.pick(COLORS)} {d.pick(ANIMALS)} near the {d.adj()} {d.noun()}.",
        f"{a.name} picked up a {d.pick(ITEMS)} and gave it to {b.name}.",
        f"It was a {d.adj()} {d.noun()}, and {a.pronoun} was glad to be home.",
        f"Then {a.name} found a {d.pick(COLORS)} {d.pick(ITEMS)} under the {d.pick(ITEMS)}.",
        f"{a.name} and {b.name} stayed at the {d.pick(PLACES)} until the {d.noun()} was over.",
        f"\"Look at the {d.pick(ANIMALS)}!\" said {a.name}.",
        f"After that, {a.pronoun} went back to {a.city}.",
    )
    return d.pick(options)


def _arithmetic(d: _Doc) -> str:
    rng = d.rng
    a, b = rng.randint(0, 20), rng.randint(0, 20)
    p = d.person()
    item = d.pick(ITEMS)
    options = (
        f"{a} plus {b} is {a + b}.",
        f"{max(a, b)} minus {min(a, b)} is {max(a, b) - min(a, b)}.",
        f"{a} times {b} is {a * b}.",
        f"If {p.name} has {a} {item}s and buys {b} more, {p.pronoun} has {a + b} {item}s.",
        f"The {d.noun()} of {a} and {b} is {a + b}.",
        f"Counting by {b or 1}: " + ", ".join(str(a + i * (b or 1)) for i in range(rng.randint(3, 7))) + ".",
    )
    return d.pick(options)


def _recipe(d: _Doc) -> str:
    p = d.person()
    n = d.rng.randint(1, 9)
    options = (
        f"To make {p.food}, take {_number(d.rng, n)} cups of {d.pick(FOODS)} and a {d.adj()} {d.noun()}.",
        f"Put the {d.pick(FOODS)} in the {d.noun()} and wait {n} minutes.",
        f"{p.name} says the {p.food} is best when it is {d.adj()}.",
        f"Mix the {d.pick(FOODS)} with the {d.pick(FOODS)} until it is {d.adj()}.",
        f"Serve it on a {d.pick(COLORS)} {d.noun()} with {d.pick(FOODS)}.",
    )
    return d.pick(options)


def _weather(d: _Doc) -> str:
    p = d.person()
    t = d.rng.randint(-5, 35)
    options = (
        f"In {p.city}, the weather on {d.pick(WEEKDAYS)} was {d.pick(WEATHER)}.",
        f"The temperature in {p.city} was {t} degrees in {d.pick(MONTHS)}.",
        f"A {d.adj()} {d.noun()} came over {p.city} in the afternoon.",
        f"{p.name} stayed inside because the {d.noun()} was {d.adj()}.",
        f"Tomorrow will be {d.pick(WEATHER)} with {d.adj()} {d.noun()}.",
    )
    return d.pick(options)


def _dialogue(d: _Doc) -> str:
    a = d.person()
    b = d.other(a)
    options = (
        f"\"Hello, {b.name},\" said {a.name}. \"How is your {b.pet}?\"",
        f"\"It is a {d.adj()} {d.noun()},\" said {b.name}.",
        f"\"Do you still live in {b.city}?\" asked {a.name}. \"Yes, I do,\" said {b.name}.",
        f"\"I am a {a.job},\" said {a.name}, \"and I like {a.food}.\"",
        f"\"What a {d.adj()} {d.noun()}!\" said {a.name}.",
    )
    return d.pick(options)


SENTENCES: dict[str, Callable[[_Doc], str]] = {
    "biography": _biography,
    "story": _story,
    "arithmetic": _arithmetic,
    "recipe": _recipe,
    "weather": _weather,
    "dialogue": _dialogue,
}


def _title(d: _Doc) -> str:
    p = d.cast[0]
    titles = {
        "biography": f"The life of {p.name}",
        "story": f"{p.name} and the {d.pick(COLORS)} {d.pick(ANIMALS)}",
        "arithmetic": "Numbers and sums",
        "recipe": f"How to make {p.food}",
        "weather": f"Weather in {p.city}",
        "dialogue": f"A talk with {p.name}",
    }
    return titles[d.topic]


def _list_sentence(d: _Doc) -> str:
    start = d.rng.randint(0, 4)
    seq = d.pick((WEEKDAYS, MONTHS, NUMBER_WORDS[1:]))
    return "In order: " + ", ".join(seq[start:start + d.rng.randint(3, 6)]) + "."


def generate_text(doc_key: str, vocab_seed: int = 0) -> str:
    """One document's text, a pure function of its key (and the world's vocab seed)."""
    rng = seeded_rng("doc", vocab_seed, doc_key)
    d = _Doc(rng, make_world(vocab_seed), rng.choice(tuple(SENTENCES)))
    # Log-uniform length: many short documents, a few long ones, as on the web.
    n_sentences = int(math.exp(rng.uniform(math.log(MIN_SENTENCES), math.log(MAX_SENTENCES + 1))))
    paragraphs: list[str] = [_title(d)] if rng.random() < 0.6 else []
    current: list[str] = []
    for _ in range(n_sentences):
        topic = d.topic if rng.random() < 0.85 else rng.choice(tuple(SENTENCES))
        current.append(_list_sentence(d) if rng.random() < 0.04 else SENTENCES[topic](d))
        if len(current) >= rng.randint(3, 7):
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs)


def synthetic_documents(seed: int | str, n: int, vocab_seed: int = 0) -> list[Document]:
    """`n` documents determined by `seed` (ids "synthetic:<seed>/<i>")."""
    if n < 0:
        raise ValueError(f"number of documents must be >= 0, got {n}")
    prefix = f"synthetic:{seed}"
    return [Document(f"{prefix}/{i}", generate_text(f"{prefix}/{i}", vocab_seed)) for i in range(n)]


def page_documents(page_id: str, page_size: int, vocab_seed: int = 0) -> list[Document]:
    """The rows of a synthetic page; a smaller page is a prefix of a larger one."""
    return [Document(f"{page_id}/{i}", generate_text(f"{page_id}/{i}", vocab_seed)) for i in range(page_size)]


def choose_page(seed: str, k: int) -> str:
    """The k-th page of a seed's sequence: a pure function of (seed, k), like the real samplers."""
    return f"synthetic/{seeded_rng('page', seed, k).randrange(PAGE_SPACE)}"


class SyntheticSource:
    """A DocumentSource over an endless generated corpus; never fails, needs no network."""

    def __init__(self, vocab_seed: int = 0):
        self.vocab_seed = vocab_seed

    def fetch_round(self, seed: str, pages: int, page_size: int, max_documents: int) -> RoundData:
        from subnet.data.sampling import dedupe_documents, documents_digest

        if pages <= 0 or page_size <= 0 or max_documents <= 0:
            raise ValueError(f"pages, page_size and max_documents must be positive, got {pages}, {page_size}, {max_documents}")
        page_ids = tuple(choose_page(seed, k) for k in range(pages))
        docs = [doc for pid in page_ids for doc in page_documents(pid, page_size, self.vocab_seed)]
        docs = dedupe_documents(docs)[:max_documents]
        return RoundData(seed=seed, page_ids=page_ids, documents=tuple(docs), digest=documents_digest(docs))

    def __repr__(self) -> str:
        return f"SyntheticSource(vocab_seed={self.vocab_seed})"
