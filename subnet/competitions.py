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


ADVANTAGE_MODES = ("age", "earned")


@dataclass(frozen=True)
class AdvantageSchedule:
    """The earlier model's advantage: eps0 * 0.5 ** (age / half_life), never below floor.

    mode "age": every model holds that. mode "earned" (issue 20, the default since the simulator
    showed it recognises the frontier faster and pays a copier less): a model that dethroned the
    leader starts from what it demonstrated, the lower end of its improvement over the leader,
    clamped to [min_earned, cap], instead of eps0; see `subnet.scoring.earned`.
    """

    eps0: float = 0.004
    half_life_blocks: float = 50_400.0
    floor: float = 0.0
    mode: str = "earned"  # chosen by scripts/simulate_advantage.py (README: advantage modes)
    cap: float = 0.01
    min_earned: float = 0.0005


@dataclass(frozen=True)
class WeightedSource:
    """One dataset of a competition's documents and its weight in the competition's loss."""

    dataset: str
    weight: float = 1.0


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
class GenerationCheck:
    """Greedy generation from fixed prompts of the round: fails a model that reaches a low loss but
    cannot generate (subnet/eval/generation.py). It fails when every output repeats one token more
    than `max_repeats` times, or when two outputs agree at more than `max_shared` positions (the
    model ignores its prompt)."""

    enabled: bool = False
    prompts: int = 2  # the first documents of the round longer than prompt_tokens
    prompt_tokens: int = 100
    new_tokens: int = 20
    max_repeats: int = 10
    max_shared: int = 9


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
    # Several weighted datasets instead of `dataset` (e.g. web, code, math); empty: `dataset` alone.
    sources: tuple[WeightedSource, ...] = ()
    # Rounds of evidence around which the cross-round test is tightest (scoring/sequential.py).
    design_rounds: float = 3.0
    # Count only every n-th seed window as evidence (1: all). Validators of different speeds then judge
    # on the same windows (scripts/simulate_consensus.py measures the trade: agreement vs speed).
    evidence_stride: int = 1
    # A toy for the devnet and tests: it does not exist on any real chain (no validator scores it there,
    # a commitment naming it is malformed), so nobody takes mainnet emissions with a toy model.
    devnet_only: bool = False
    generation_check: GenerationCheck = field(default_factory=GenerationCheck)
    # Sliced evaluation (subnet/eval/sliced.py): a model whose bf16 weights exceed slice_above_share x the
    # device's memory is scored a slice of layers at a time instead of whole (opt-in per competition).
    sliced_eval: bool = False
    slice_above_share: float = 0.35
    # Each model brings its own tokenizer.json (issue 28): checked within bounds and on the round's texts,
    # and the loss becomes bits per byte of the same texts. `tokenizer` is then only the miners' default.
    free_tokenizer: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.sources, list):  # as `to_dict` writes them
            object.__setattr__(self, "sources", tuple(
                WeightedSource(**src) if isinstance(src, Mapping) else src for src in self.sources))
        if isinstance(self.generation_check, Mapping):  # as `to_dict` writes it
            object.__setattr__(self, "generation_check", GenerationCheck(**self.generation_check))
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["architectures"] = list(self.architectures)
        d["sources"] = [asdict(src) for src in self.sources]
        return d

    @property
    def weighted_sources(self) -> tuple[WeightedSource, ...]:
        """The datasets a round draws from, with weights summing to 1 (`dataset` alone by default)."""
        listed = self.sources or (WeightedSource(self.dataset, 1.0),)
        total = sum(src.weight for src in listed)
        return tuple(WeightedSource(src.dataset, src.weight / total) for src in listed)


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
    if a.mode not in ADVANTAGE_MODES:
        fail("advantage.mode", f"must be one of {ADVANTAGE_MODES}, got {a.mode!r}")
    if not (0 <= a.min_earned <= a.cap < 1):
        fail("advantage.cap", f"must satisfy 0 <= min_earned <= cap < 1, got {a.min_earned} and {a.cap}")
    if not (0 < c.design_rounds <= 10_000):
        fail("design_rounds", f"must be in (0, 10000], got {c.design_rounds}")
    if not (isinstance(c.evidence_stride, int) and 1 <= c.evidence_stride <= 48):
        fail("evidence_stride", f"must be an integer in [1, 48], got {c.evidence_stride!r}")
    if not isinstance(c.sources, tuple) or not all(
        isinstance(src, WeightedSource) and isinstance(src.dataset, str) and src.dataset
        and isinstance(src.weight, Real) and not isinstance(src.weight, bool)
        and math.isfinite(src.weight) and src.weight > 0
        for src in c.sources
    ):
        fail("sources", f"must list datasets with positive weights, got {c.sources!r}")
    if len({src.dataset for src in c.sources}) != len(c.sources):
        fail("sources", "must not list a dataset twice")
    if not isinstance(c.devnet_only, bool):
        fail("devnet_only", f"must be true or false, got {c.devnet_only!r}")
    if not isinstance(c.sliced_eval, bool):
        fail("sliced_eval", f"must be true or false, got {c.sliced_eval!r}")
    if isinstance(c.slice_above_share, bool) or not isinstance(c.slice_above_share, Real) or not (
            0 < c.slice_above_share <= 1):
        fail("slice_above_share", f"must be a number in (0, 1], got {c.slice_above_share!r}")
    if not isinstance(c.free_tokenizer, bool):
        fail("free_tokenizer", f"must be true or false, got {c.free_tokenizer!r}")
    if c.free_tokenizer and c.sliced_eval:  # a sliced pass takes the round's tokens, not each model's own
        fail("free_tokenizer", "cannot be enabled together with sliced_eval")
    if not (0 < c.reward_share <= 1):
        fail("reward_share", f"must be in (0, 1], got {c.reward_share}")
    _validate_generation(c, fail)
    s = c.sampling
    if s.pages <= 0 or not (0 < s.page_size <= 100) or s.max_documents <= 0:
        fail("sampling", f"needs pages > 0, 0 < page_size <= 100, max_documents > 0; got {s}")
    if s.min_documents is not None and not (0 < s.min_documents <= s.max_documents):
        fail("sampling.min_documents", f"must be in 1..max_documents ({s.max_documents}), got {s.min_documents}")


def _validate_generation(c: Competition, fail) -> None:
    g = c.generation_check
    if not isinstance(g, GenerationCheck):
        fail("generation_check", f"must be a table of the check's settings, got {g!r}")
    if not isinstance(g.enabled, bool):
        fail("generation_check.enabled", f"must be true or false, got {g.enabled!r}")
    for name in ("prompts", "prompt_tokens", "new_tokens", "max_repeats", "max_shared"):
        value = getattr(g, name)
        if isinstance(value, bool) or not isinstance(value, Integral):
            fail(f"generation_check.{name}", f"must be an integer, got {value!r}")
    if not (1 <= g.prompts <= 16):
        fail("generation_check.prompts", f"must be in [1, 16], got {g.prompts}")
    if not (1 <= g.new_tokens <= 256):
        fail("generation_check.new_tokens", f"must be in [1, 256], got {g.new_tokens}")
    if not g.prompt_tokens >= 1 or (g.enabled and g.prompt_tokens > c.max_seq_len - g.new_tokens):  # off: unused
        fail("generation_check.prompt_tokens", f"must be in [1, max_seq_len - new_tokens], got {g.prompt_tokens}")
    if not (1 <= g.max_repeats < g.new_tokens):
        fail("generation_check.max_repeats", f"must be in [1, new_tokens), got {g.max_repeats}")
    if not (0 <= g.max_shared < g.new_tokens):
        fail("generation_check.max_shared", f"must be in [0, new_tokens), got {g.max_shared}")
    if g.enabled and c.sliced_eval:  # a sliced model has no whole forward to generate from (yet)
        fail("generation_check", "cannot be enabled together with sliced_eval")
    if g.enabled and c.free_tokenizer:  # its prompts are the competition's tokens; a free round has texts
        fail("generation_check", "cannot be enabled together with free_tokenizer")


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
        "advantage.mode": (c.advantage.mode, str), "advantage.cap": (c.advantage.cap, Real),
        "advantage.min_earned": (c.advantage.min_earned, Real), "design_rounds": (c.design_rounds, Real),
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
            # generation_check stays off: the one low-loss gamed model found passes it
            # (scripts/generation_gamed.py), so it would only add a way to fail honest models.
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
            devnet_only=True,
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
        if isinstance(kwargs.get("generation_check"), bool):  # `generation_check = true`: the defaults
            kwargs["generation_check"] = GenerationCheck(enabled=kwargs["generation_check"])
        elif isinstance(kwargs.get("generation_check"), Mapping):
            kwargs["generation_check"] = GenerationCheck(**kwargs["generation_check"])
        if "sources" in kwargs:
            if not isinstance(kwargs["sources"], list) or not all(isinstance(x, dict) for x in kwargs["sources"]):
                raise CompetitionError(f"competition {cid!r}: field 'sources' must be a list of tables")
            kwargs["sources"] = tuple(WeightedSource(**x) for x in kwargs["sources"])
        for name in ("max_seq_len", "min_params", "max_params", "max_bytes"):
            if not isinstance(kwargs[name], int) or isinstance(kwargs[name], bool):
                raise CompetitionError(f"competition {cid!r}: field {name!r} must be an integer, got {kwargs[name]!r}")
        return Competition(**kwargs)
    except TypeError as e:
        raise CompetitionError(f"competition {cid!r}: {e}") from None


def read_listed_file(path: str | Path, what: str, keys: tuple[str, ...], items: str) -> list:
    """The list a TOML or JSON file holds under the first of `keys` (a JSON file may be the list itself);
    every error names the `what` file and why."""
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except OSError as e:
        raise CompetitionError(f"cannot read {what} file {p}: {e}") from None
    try:
        parsed = tomllib.loads(raw) if p.suffix == ".toml" else json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise CompetitionError(f"{what} file {p} is not valid {p.suffix.lstrip('.') or 'JSON'}: {e}") from None
    listed = next((parsed[k] for k in keys if k in parsed), None) if isinstance(parsed, dict) else parsed
    if not isinstance(listed, list) or not listed:
        raise CompetitionError(f"{what} file {p} defines no {items}")
    return listed


def load_competitions(path: str | Path) -> dict[str, Competition]:
    """Read competitions from a TOML file (`[[competition]]` tables) or a JSON list/object."""
    p = Path(path)
    entries = read_listed_file(p, "competitions", ("competition", "competitions"), "competitions")
    return competitions_from_tables(entries, f"competitions file {p}")


def competitions_from_tables(entries, where: str) -> dict[str, Competition]:
    """Validated competitions, by id, from parsed tables; every error starts with `where`."""
    result: dict[str, Competition] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise CompetitionError(f"{where}: each competition must be a table, got {entry!r}")
        try:
            c = competition_from_dict(entry)
        except CompetitionError as e:
            raise CompetitionError(f"{where}: {e}") from None
        if c.id in result:
            raise CompetitionError(f"{where}: duplicate competition id {c.id!r}")
        result[c.id] = c
    total = sum(c.reward_share for c in result.values())
    if total > 1 + 1e-9:
        raise CompetitionError(f"{where}: reward shares sum to {total} (field 'reward_share'), more than 1")
    return result


def get_competition(competition_id: str, competitions: Mapping[str, Competition] | None = None) -> Competition:
    table = DEFAULT_COMPETITIONS if competitions is None else competitions
    try:
        return table[competition_id]
    except KeyError:
        raise CompetitionError(f"unknown competition {competition_id!r}; known: {sorted(table)}") from None


def is_devnet(network: str) -> bool:
    return str(network).strip().startswith("devnet:")  # subnet.chain.factory.DEVNET_PREFIX


def competitions_on(network: str, competitions: Mapping[str, Competition] | None = None) -> dict[str, Competition]:
    """The competitions that exist on `network`: all of them on a devnet, none that is `devnet_only` elsewhere."""
    table = DEFAULT_COMPETITIONS if competitions is None else competitions
    return {cid: c for cid, c in table.items() if is_devnet(network) or not c.devnet_only}


def default_competitions(network: str, competitions: Mapping[str, Competition] | None = None) -> dict[str, Competition]:
    """What a validator scores when no --competition is given: on a devnet its toy competitions (all,
    when it has none); elsewhere every competition of the network with a reward share."""
    here = competitions_on(network, competitions)
    if is_devnet(network):
        return {cid: c for cid, c in here.items() if c.devnet_only} or here
    return {cid: c for cid, c in here.items() if c.reward_share > 0}


def default_competition(network: str, competitions: Mapping[str, Competition] | None = None) -> str:
    """A miner's competition when none is given: the network's default one with the largest reward share."""
    chosen = default_competitions(network, competitions)
    if not chosen:
        raise CompetitionError(f"no competition runs on network {network!r}")
    return min(chosen.values(), key=lambda c: (-c.reward_share, c.id)).id


def get_competition_on(network: str, competition_id: str,
                       competitions: Mapping[str, Competition] | None = None) -> Competition:
    """get_competition, refusing a devnet-only competition off the devnet with a reason."""
    competition = get_competition(competition_id, competitions)
    if competition_id not in competitions_on(network, competitions):
        raise CompetitionError(f"competition {competition_id!r} exists only on a devnet (devnet:PATH), "
                               f"not on {network!r}")
    return competition
