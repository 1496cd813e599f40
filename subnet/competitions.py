"""Competitions: what a model must be to compete, and how a round of it is judged.

A competition is plain data. The defaults below ship with the package; operators can load
others from a TOML or JSON file (`load_competitions`). Every field is validated on load so a
typo fails at start-up with the field's name, not hours later in a round.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field, fields
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class CompetitionError(ValueError):
    """A competition definition is invalid or unknown."""


@dataclass(frozen=True)
class AdvantageSchedule:
    """The earlier model's advantage: eps0 * 0.5 ** (age / half_life), never below floor."""

    eps0: float = 0.004
    half_life_blocks: float = 50_400.0
    floor: float = 0.0


@dataclass(frozen=True)
class SamplingBudget:
    """How many documents a round scores: `pages` pages of `page_size` rows, at most `max_documents`.

    A round left with fewer than `min_documents` (after blank, truncated and duplicate texts are
    dropped) is not judged: too few documents make the paired comparisons noise, and one document
    would hand everything to the earliest model. None means half of `max_documents`.
    """

    pages: int = 24
    page_size: int = 100
    max_documents: int = 2_400
    min_documents: int | None = None

    @property
    def required_documents(self) -> int:
        return self.min_documents if self.min_documents is not None else max(1, self.max_documents // 2)


@dataclass(frozen=True)
class Competition:
    id: str
    tokenizer: str  # Hugging Face repo id, or "builtin:tiny" for the tokenizer shipped in the package
    max_seq_len: int
    min_params: int
    max_params: int
    max_bytes: int  # total size of the repo revision, checked before any download
    architectures: tuple[str, ...]  # transformers class names, e.g. "LlamaForCausalLM"
    advantage: AdvantageSchedule = field(default_factory=AdvantageSchedule)
    reward_share: float = 1.0
    sampling: SamplingBudget = field(default_factory=SamplingBudget)
    dataset: str = "fineweb"  # see subnet.data.sources: fineweb[-rows|-parquet[@REV]], parquet:DIR, synthetic

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["architectures"] = list(self.architectures)
        return d


def _validate(c: Competition) -> None:
    def fail(name: str, why: str) -> None:
        raise CompetitionError(f"competition {c.id!r}: field {name!r} {why}")

    if not c.id or not all(ch.isalnum() or ch in "-_" for ch in c.id) or len(c.id) > 32:
        raise CompetitionError(f"competition id {c.id!r} must be 1-32 letters, digits, '-' or '_'")
    _check_types(c, fail)
    if not c.tokenizer:
        fail("tokenizer", "must name a tokenizer")
    if c.max_seq_len < 8:
        fail("max_seq_len", f"must be at least 8, got {c.max_seq_len}")
    if not (0 < c.min_params <= c.max_params):
        fail("min_params", f"must satisfy 0 < min_params <= max_params, got {c.min_params} and {c.max_params}")
    if c.max_bytes <= 0:
        fail("max_bytes", f"must be positive, got {c.max_bytes}")
    if not c.architectures or not all(isinstance(a, str) and a for a in c.architectures):
        fail("architectures", "must list at least one transformers class name")
    a = c.advantage
    if not (0 <= a.eps0 < 1) or not math.isfinite(a.eps0):
        fail("advantage.eps0", f"must be in [0, 1), got {a.eps0}")
    if not (a.half_life_blocks > 0):
        fail("advantage.half_life_blocks", f"must be positive, got {a.half_life_blocks}")
    if not (0 <= a.floor <= a.eps0):
        fail("advantage.floor", f"must be in [0, eps0], got {a.floor}")
    if not (0 < c.reward_share <= 1):
        fail("reward_share", f"must be in (0, 1], got {c.reward_share}")
    s = c.sampling
    if s.pages <= 0 or not (0 < s.page_size <= 100) or s.max_documents <= 0:
        fail("sampling", f"needs pages > 0, 0 < page_size <= 100, max_documents > 0; got {s}")
    if s.min_documents is not None and not (0 < s.min_documents <= s.max_documents):
        fail("sampling.min_documents", f"must be in 1..max_documents ({s.max_documents}), got {s.min_documents}")


_KIND_NAMES = {str: "a string", Integral: "an integer", Real: "a number"}


def _check_types(c: Competition, fail) -> None:
    """Wrong types (a quoted number in TOML, say) fail with the field's name, not a bare TypeError."""
    expected = {
        "tokenizer": (c.tokenizer, str), "dataset": (c.dataset, str),
        "max_seq_len": (c.max_seq_len, Integral), "min_params": (c.min_params, Integral),
        "max_params": (c.max_params, Integral), "max_bytes": (c.max_bytes, Integral),
        "reward_share": (c.reward_share, Real),
        "advantage.eps0": (c.advantage.eps0, Real), "advantage.floor": (c.advantage.floor, Real),
        "advantage.half_life_blocks": (c.advantage.half_life_blocks, Real),
        "sampling.pages": (c.sampling.pages, Integral), "sampling.page_size": (c.sampling.page_size, Integral),
        "sampling.max_documents": (c.sampling.max_documents, Integral),
    }
    if c.sampling.min_documents is not None:
        expected["sampling.min_documents"] = (c.sampling.min_documents, Integral)
    for name, (value, kind) in expected.items():
        if isinstance(value, bool) or not isinstance(value, kind):
            fail(name, f"must be {_KIND_NAMES[kind]}, got {value!r}")
    if isinstance(c.architectures, str) or not isinstance(c.architectures, tuple):
        fail("architectures", f"must be a list of transformers class names, got {c.architectures!r}")


LLAMA_FAMILY = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")

DEFAULT_COMPETITIONS: dict[str, Competition] = {
    c.id: c
    for c in (
        Competition(
            id="b3",
            tokenizer="Xenova/gpt-4",
            max_seq_len=4096,
            min_params=1_000_000_000,
            max_params=3_400_000_000,
            max_bytes=15 * 1024**3,
            architectures=LLAMA_FAMILY,
            reward_share=1.0,
        ),
        Competition(
            id="tiny",
            tokenizer="builtin:tiny",
            max_seq_len=256,
            min_params=10_000,
            max_params=20_000_000,
            max_bytes=128 * 1024**2,
            architectures=LLAMA_FAMILY + ("GPT2LMHeadModel",),
            sampling=SamplingBudget(pages=4, page_size=40, max_documents=160),
            dataset="synthetic",
        ),
    )
}


def competition_from_dict(data: Mapping[str, Any]) -> Competition:
    """Build a Competition from plain data (as read from TOML/JSON), naming any bad field."""
    known = {f.name for f in fields(Competition)}
    unknown = set(data) - known
    cid = data.get("id", "?")
    if unknown:
        raise CompetitionError(f"competition {cid!r}: unknown field(s) {sorted(unknown)}")
    missing = {"id", "tokenizer", "max_seq_len", "min_params", "max_params", "max_bytes", "architectures"} - set(data)
    if missing:
        raise CompetitionError(f"competition {cid!r}: missing field(s) {sorted(missing)}")
    kwargs = dict(data)
    try:
        if isinstance(kwargs["architectures"], list):  # anything else is refused by name in _validate
            kwargs["architectures"] = tuple(kwargs["architectures"])
        if "advantage" in kwargs:
            kwargs["advantage"] = AdvantageSchedule(**kwargs["advantage"])
        if "sampling" in kwargs:
            kwargs["sampling"] = SamplingBudget(**kwargs["sampling"])
        for name in ("max_seq_len", "min_params", "max_params", "max_bytes"):
            if not isinstance(kwargs[name], int) or isinstance(kwargs[name], bool):
                raise CompetitionError(f"competition {cid!r}: field {name!r} must be an integer, got {kwargs[name]!r}")
        return Competition(**kwargs)
    except TypeError as e:
        raise CompetitionError(f"competition {cid!r}: {e}") from None


def load_competitions(path: str | Path) -> dict[str, Competition]:
    """Read competitions from a TOML file (`[[competition]]` tables) or a JSON list/object."""
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except OSError as e:
        raise CompetitionError(f"cannot read competitions file {p}: {e}") from None
    try:
        if p.suffix == ".toml":
            entries = tomllib.loads(raw).get("competition", [])
        else:
            parsed = json.loads(raw)
            entries = parsed.get("competitions", []) if isinstance(parsed, dict) else parsed
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise CompetitionError(f"competitions file {p} is not valid {p.suffix.lstrip('.') or 'JSON'}: {e}") from None
    if not isinstance(entries, list) or not entries:
        raise CompetitionError(f"competitions file {p} defines no competitions")
    result: dict[str, Competition] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise CompetitionError(f"competitions file {p}: each competition must be a table, got {entry!r}")
        c = competition_from_dict(entry)
        if c.id in result:
            raise CompetitionError(f"competitions file {p}: duplicate competition id {c.id!r}")
        result[c.id] = c
    total = sum(c.reward_share for c in result.values())
    if total > 1 + 1e-9:
        raise CompetitionError(f"competitions file {p}: reward shares sum to {total}, more than 1")
    return result


def get_competition(competition_id: str, competitions: Mapping[str, Competition] | None = None) -> Competition:
    table = DEFAULT_COMPETITIONS if competitions is None else competitions
    try:
        return table[competition_id]
    except KeyError:
        raise CompetitionError(f"unknown competition {competition_id!r}; known: {sorted(table)}") from None
