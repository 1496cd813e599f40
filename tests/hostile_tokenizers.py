"""Models that bring their own tokenizer (free-tokenizer competitions), honest and hostile.

Two honest models with different tokenizers: the package's 2,048-token BPE and a 320-token BPE
trained here. Each hostile case twists the honest tokenizer.json (or the config's EOS) in one way
and names the reason a validator must record: JSON bombs, unknown or regex-heavy components,
random encoding, cutting or padding, ids past the embeddings, and (found only when scoring) a
tokenizer that does not survive the round trip or that the library refuses to build.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from subnet.data.tokenizer import TINY_TOKENIZER_DIR
from tests.validator_fixtures import E2E_COMPETITION

FREE_COMPETITION = replace(E2E_COMPETITION, free_tokenizer=True)
SMALL_VOCAB = 320
_DEEP = 100_000


@dataclass(frozen=True)
class TokenizerCase:
    name: str
    reason: str
    build: Callable[[Path], None]
    scored: bool = False  # only the scoring worker finds it (the static checks pass)


def small_tokenizer_json(seed: str = "free-tokenizer") -> str:
    """A byte-level BPE of SMALL_VOCAB tokens trained on synthetic texts, with <|endoftext|> as id 0."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from subnet.data.synthetic import synthetic_documents

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=SMALL_VOCAB, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([d.text for d in synthetic_documents(seed, 200)], trainer)
    return tok.to_str()


def free_model(directory: Path, tokenizer_json: str, seed: int = 0, uniform: bool = False) -> Path:
    """A tiny Llama sized to `tokenizer_json`, saved with it. `uniform`: a zero head, so every
    prediction is uniform over the vocabulary (its loss is known in closed form)."""
    import torch
    from tokenizers import Tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = Tokenizer.from_str(tokenizer_json)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=-(-tok.get_vocab_size() // 64) * 64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, intermediate_size=64, max_position_embeddings=FREE_COMPETITION.max_seq_len,
        tie_word_embeddings=False, eos_token_id=tok.token_to_id("<|endoftext|>"),
        bos_token_id=tok.token_to_id("<|endoftext|>"),
    )
    model = LlamaForCausalLM(config)
    if uniform:
        with torch.no_grad():
            model.lm_head.weight.zero_()
    model.save_pretrained(directory, safe_serialization=True)
    for extra in Path(directory).iterdir():
        if extra.name not in ("config.json", "model.safetensors"):
            extra.unlink()
    (Path(directory) / "tokenizer.json").write_text(tokenizer_json)
    return Path(directory)


def tiny_tokenizer_json() -> str:
    return (TINY_TOKENIZER_DIR / "tokenizer.json").read_text()


# ----------------------------------------------------------------------------- twists


def _raw(make: Callable[[str], bytes | str]) -> Callable[[Path], None]:
    def build(d: Path) -> None:
        out = make((d / "tokenizer.json").read_text())
        (d / "tokenizer.json").write_bytes(out if isinstance(out, bytes) else out.encode())
    return build


def _edit(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def build(d: Path) -> None:
        data = json.loads((d / "tokenizer.json").read_text())
        edit(data)
        (d / "tokenizer.json").write_text(json.dumps(data))
    return build


def _config(**changes) -> Callable[[Path], None]:
    def build(d: Path) -> None:
        data = json.loads((d / "config.json").read_text())
        data.update(changes)
        (d / "config.json").write_text(json.dumps(data))
    return build


def _set(key: str, value) -> Callable[[Path], None]:
    return _edit(lambda t: t.__setitem__(key, value))


def _split(pattern: str) -> dict:
    return {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}


def _pre(node: dict) -> Callable[[Path], None]:
    """The honest pre-tokenizer with `node` run before it."""
    return _edit(lambda t: t.__setitem__("pre_tokenizer", {"type": "Sequence", "pretokenizers": [node, t["pre_tokenizer"]]}))


def _first_vocab(t: dict, value) -> None:
    t["model"]["vocab"][next(iter(t["model"]["vocab"]))] = value


def _nest(depth: int) -> dict:
    node: dict = {"type": "NFC"}
    for _ in range(depth):
        node = {"type": "Sequence", "normalizers": [node]}
    return node


CASES: tuple[TokenizerCase, ...] = (
    # ---- the file itself
    TokenizerCase("missing", "tokenizer_missing", lambda d: (d / "tokenizer.json").unlink()),
    TokenizerCase("oversize", "bad_tokenizer", _raw(lambda t: t[:-1] + ', "pad": "' + "x" * (17 << 20) + '"}')),
    TokenizerCase("deep", "bad_tokenizer", _raw(lambda t: t[:-1] + ', "x": ' + "[" * _DEEP + "]" * _DEEP + "}")),
    TokenizerCase("value_bomb", "bad_tokenizer", _raw(lambda t: t[:-1] + ', "x": [' + "[]," * 1_600_000 + "[]]}")),
    TokenizerCase("int_digits", "bad_tokenizer", _raw(lambda t: t.replace('"id": 0', '"id": ' + "9" * 5000, 1))),
    TokenizerCase("infinite", "bad_tokenizer", _raw(lambda t: t.replace('"dropout": null', '"dropout": 1e999', 1))),
    TokenizerCase("duplicate_key", "bad_tokenizer", _raw(lambda t: t[:-1] + ', "version": "1.0"}')),
    TokenizerCase("not_utf8", "bad_tokenizer", _raw(lambda t: t[:-1].encode() + b', "x": "\xff\xfe"}')),
    TokenizerCase("not_object", "bad_tokenizer", _raw(lambda t: "[1, 2, 3]")),
    TokenizerCase("unknown_key", "bad_tokenizer", _set("plugin", {"path": "/tmp/evil.so"})),
    # ---- components
    TokenizerCase("model_type", "bad_tokenizer", _edit(lambda t: t["model"].update(type="Evil"))),
    TokenizerCase("normalizer_type", "bad_tokenizer", _set("normalizer", {"type": "Custom"})),
    TokenizerCase("pre_tokenizer_type", "bad_tokenizer", _set("pre_tokenizer", {"type": "Custom"})),
    TokenizerCase("decoder_type", "bad_tokenizer", _set("decoder", {"type": "Custom"})),
    TokenizerCase("regex_nested_repeat", "bad_tokenizer", _pre(_split(r"(\w+\s?)*$"))),
    TokenizerCase("regex_alternation_repeat", "bad_tokenizer", _pre(_split(r"(a|aa)+b"))),
    TokenizerCase("regex_polynomial", "bad_tokenizer", _pre(_split(r"[ a]*[ b]*[ c]*[ d]*\d"))),
    TokenizerCase("regex_backreference", "bad_tokenizer",
                  _set("normalizer", {"type": "Replace", "pattern": {"Regex": r"(\w)\1"}, "content": "x"})),
    TokenizerCase("regex_oversize", "bad_tokenizer", _pre(_split("a" * 5000))),
    TokenizerCase("sequence_too_long", "bad_tokenizer",
                  _set("normalizer", {"type": "Sequence", "normalizers": [{"type": "NFC"}] * 100})),
    TokenizerCase("sequence_too_deep", "bad_tokenizer", _set("normalizer", _nest(10))),
    TokenizerCase("prepend_oversize", "bad_tokenizer", _set("normalizer", {"type": "Prepend", "prepend": "x" * 10_000})),
    TokenizerCase("dropout", "bad_tokenizer", _edit(lambda t: t["model"].update(dropout=0.5))),
    TokenizerCase("truncation", "bad_tokenizer",
                  _set("truncation", {"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0})),
    TokenizerCase("padding", "bad_tokenizer", _set("padding", {"strategy": "BatchLongest", "direction": "Right",
                                                               "pad_to_multiple_of": None, "pad_id": 0,
                                                               "pad_type_id": 0, "pad_token": "<|endoftext|>"})),
    TokenizerCase("merges_not_pairs", "bad_tokenizer", _edit(lambda t: t["model"].update(merges=[["a", "b", "c"]]))),
    TokenizerCase("vocab_negative_id", "bad_tokenizer", _edit(lambda t: _first_vocab(t, -1))),
    TokenizerCase("too_many_added", "bad_tokenizer", _edit(lambda t: t["added_tokens"].extend(
        {"id": 1, "content": f"<x{i}>", "special": True} for i in range(5000)))),
    # ---- ids past the model's embeddings
    TokenizerCase("vocab_id_out_of_range", "tokenizer_ids", _edit(lambda t: _first_vocab(t, 10**6))),
    TokenizerCase("added_id_out_of_range", "tokenizer_ids", _edit(lambda t: t["added_tokens"].append(
        {"id": 99_999, "content": "<|evil|>", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}))),
    TokenizerCase("eos_out_of_range", "bad_tokenizer", _config(eos_token_id=10**6)),
    TokenizerCase("eos_missing", "bad_tokenizer", _config(eos_token_id=None)),
    # ---- passes every static check; found by the scoring worker
    TokenizerCase("lowercase_round_trip", "tokenizer_round_trip", _set("normalizer", {"type": "Lowercase"}), scored=True),
    TokenizerCase("library_refuses", "bad_tokenizer",
                  _edit(lambda t: t["model"].update(merges=[["never", "seen"]] + t["model"]["merges"])), scored=True),
)


def build_case(case: TokenizerCase, honest: Path, root: Path) -> Path:
    import shutil

    target = Path(root) / case.name
    shutil.copytree(honest, target)
    case.build(target)
    return target
