"""A miner's tokenizer.json, read within bounds before the tokenizers library ever sees it.

In a competition with free tokenizers (`Competition.free_tokenizer`) each model brings its own
tokenizer.json, a new attack surface: the Rust library parses any size, builds any number of merges
and added tokens, and compiles any regex (Oniguruma backtracks, so a pattern such as `(a+)+$` can
take exponential time on one line of text). Here the file is parsed like config.json (size, values,
depth: `bounded_json.parse_bounded`), every component must be of a known kind with bounded counts,
every regex must be free of the constructs that backtrack without bound, nothing may make encoding
random (BPE dropout) or cut and pad texts, and every id must index a row of the model's embeddings.
Only what passes is handed to `tokenizers.Tokenizer.from_str`, inside the scoring worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subnet.hub.bounded_json import parse_bounded
from subnet.hub.errors import ModelRejected

TOKENIZER_NAME = "tokenizer.json"
MAX_TOKENIZER_BYTES = 16 * 1024**2  # a 128k-token BPE with its merges is under 10 MiB
MAX_TOKENIZER_VALUES = 1_500_000  # bounds the parse's memory (about 64 bytes a value)
MAX_VOCAB = 300_000
MAX_MERGES = 600_000
MAX_ADDED_TOKENS = 4_096
MAX_TOKEN_CHARS = 256  # a vocabulary or added token's text
MAX_STEPS = 16  # components in one Sequence
MAX_NESTING = 3  # Sequences inside Sequences
MAX_PATTERN_CHARS = 512
MAX_LITERAL_CHARS = 64  # Prepend, Replace content, Strip and other fixed strings

_TOP_KEYS = {"version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer",
             "post_processor", "decoder", "model"}
_NORMALIZERS = {"NFC", "NFD", "NFKC", "NFKD", "Lowercase", "Strip", "StripAccents", "Prepend", "Replace",
                "Precompiled", "BertNormalizer", "Nmt", "Sequence"}
_PRE_TOKENIZERS = {"ByteLevel", "Whitespace", "WhitespaceSplit", "Metaspace", "Split", "Punctuation", "Digits",
                   "UnicodeScripts", "CharDelimiterSplit", "BertPreTokenizer", "Sequence"}
_DECODERS = {"ByteLevel", "Metaspace", "WordPiece", "BPEDecoder", "ByteFallback", "Fuse", "Strip", "Replace",
             "CTC", "Sequence"}
_POST_PROCESSORS = {"TemplateProcessing", "ByteLevel", "RobertaProcessing", "BertProcessing", "Sequence"}
_SEQUENCE_KEYS = {"normalizer": "normalizers", "pre_tokenizer": "pretokenizers", "decoder": "decoders",
                  "post_processor": "processors"}
_ALLOWED = {"normalizer": _NORMALIZERS, "pre_tokenizer": _PRE_TOKENIZERS, "decoder": _DECODERS,
            "post_processor": _POST_PROCESSORS}
_QUANTIFIERS = "*+{"
# Unbounded repeats one alternative may chain: each can split a run of text with the next, so k of
# them over overlapping classes cost n^k steps (GPT-4's and Llama 3's patterns chain at most 2).
MAX_CHAINED_REPEATS = 3


@dataclass(frozen=True)
class TokenizerFile:
    text: str  # the file as read, for tokenizers.Tokenizer.from_str
    vocab_size: int  # entries of the model's vocabulary
    max_id: int  # the largest id of the vocabulary and the added tokens


def _bad(why: str) -> ModelRejected:
    return ModelRejected("bad_tokenizer", f"{TOKENIZER_NAME}: {why}")


def read_tokenizer_file(model_dir: Path | str, vocab_rows: int) -> TokenizerFile:
    """The model's tokenizer.json after every check; `vocab_rows`: the model's embedding rows."""
    path = Path(model_dir) / TOKENIZER_NAME
    if not path.is_file() or path.is_symlink():
        raise ModelRejected("tokenizer_missing", f"{TOKENIZER_NAME} is missing; this competition scores each "
                                                 f"model with its own tokenizer")
    size = path.stat().st_size
    if size > MAX_TOKENIZER_BYTES:
        raise _bad(f"{size:,} bytes, the limit is {MAX_TOKENIZER_BYTES:,}")
    data = path.read_bytes()
    raw = parse_bounded(data, what=TOKENIZER_NAME, reason="bad_tokenizer", max_bytes=MAX_TOKENIZER_BYTES,
                        max_values=MAX_TOKENIZER_VALUES)
    vocab_size, max_id = check_tokenizer(raw)
    if max_id >= vocab_rows:
        raise ModelRejected("tokenizer_ids", f"{TOKENIZER_NAME} uses id {max_id:,}, the model's embeddings have "
                                             f"{vocab_rows:,} rows")
    return TokenizerFile(data.decode("utf-8"), vocab_size, max_id)


def check_tokenizer(raw: Any) -> tuple[int, int]:
    """(vocabulary size, largest id) of a parsed tokenizer.json; ModelRejected('bad_tokenizer') otherwise."""
    if not isinstance(raw, dict):
        raise _bad("not a JSON object")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise _bad(f"unknown keys {unknown[:5]}")
    for key in ("truncation", "padding"):
        if raw.get(key) is not None:
            raise _bad(f"{key} must be null: every document is scored whole, never cut or padded")
    for key in _ALLOWED:
        _check_component(key, raw.get(key), 0)
    vocab_size, max_id = _check_model(raw.get("model"))
    return vocab_size, max(max_id, _check_added(raw.get("added_tokens", [])))


def _check_component(kind: str, node: Any, nesting: int) -> None:
    if node is None:
        return
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        raise _bad(f"{kind} must be an object with a type")
    kind_type = node["type"]
    if kind_type not in _ALLOWED[kind]:
        raise _bad(f"{kind} type {kind_type[:40]!r} is not allowed; allowed: {', '.join(sorted(_ALLOWED[kind]))}")
    if kind_type == "Sequence":
        steps = node.get(_SEQUENCE_KEYS[kind])
        if not isinstance(steps, list) or len(steps) > MAX_STEPS or nesting >= MAX_NESTING:
            raise _bad(f"{kind} Sequence must list at most {MAX_STEPS} steps, nested at most {MAX_NESTING} deep")
        for step in steps:
            _check_component(kind, step, nesting + 1)
        return
    if "pattern" in node:
        _check_pattern(kind, node["pattern"])
    for key, value in node.items():
        if key in ("content", "prepend", "replacement", "delimiter", "prefix", "suffix") and \
                (not isinstance(value, str) or len(value) > MAX_LITERAL_CHARS):
            raise _bad(f"{kind} {kind_type} {key} must be a string of at most {MAX_LITERAL_CHARS} characters")


def _check_pattern(kind: str, pattern: Any) -> None:
    if not isinstance(pattern, dict) or len(pattern) != 1 or not set(pattern) <= {"String", "Regex"}:
        raise _bad(f"{kind} pattern must be {{'String': ...}} or {{'Regex': ...}}")
    (form, text), = pattern.items()
    if not isinstance(text, str) or not text or len(text) > MAX_PATTERN_CHARS:
        raise _bad(f"{kind} pattern must be a non-empty string of at most {MAX_PATTERN_CHARS} characters")
    if form == "Regex":
        why = regex_hazard(text)
        if why:
            raise _bad(f"{kind} regex {text[:60]!r} {why}")


def regex_hazard(pattern: str) -> str | None:
    """Why a regex could backtrack without bound (or recurse), or None when it is of the safe kind.

    Refused: back-references and subroutine calls, conditionals, any repeated group (`*`, `+`
    or `{n,}` after `)`) that itself holds a repeat or an alternation: `(a+)+`, `(a|a)*`, and more
    than MAX_CHAINED_REPEATS unbounded repeats in one top-level alternative (`[ a]*[ b]*[ c]*[ d]*x`
    takes 30 s on 200 spaces). The patterns real tokenizers use (GPT-2, GPT-4, Llama 3) repeat only
    character classes, at most two in a row. What still slips through ends at the worker's time limit.
    """
    groups: list[bool] = []  # per open group: holds a repeat or an alternation
    i, n, in_class, chained = 0, len(pattern), False, 0
    while i < n:
        ch = pattern[i]
        if not in_class and not groups and ch == "|":
            chained = 0
        elif not in_class and (ch in "*+" or ch == "{" and pattern[i:].split("}", 1)[0].endswith(",")):
            chained += 1
            if chained > MAX_CHAINED_REPEATS:
                return f"chains more than {MAX_CHAINED_REPEATS} unbounded repeats in one alternative"
        if ch == "\\":
            nxt = pattern[i + 1:i + 2]
            if not in_class and (nxt.isdigit() and nxt != "0" or nxt in ("k", "g")):
                return "uses a back-reference or subroutine call"
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if pattern[i + 1:i + 2] == "]":
                i += 1
        elif ch == "(":
            if pattern[i + 1:i + 3] == "?(":
                return "uses a conditional group"
            groups.append(False)
        elif ch == ")":
            if not groups:
                return "has an unbalanced ')'"
            risky = groups.pop()
            repeated = pattern[i + 1:i + 2] in ("*", "+") or pattern[i + 1:i + 2] == "{" and \
                not pattern[i + 2:].split("}", 1)[0].isdigit()
            if repeated and risky:
                return "repeats a group that holds a repeat or an alternation (catastrophic backtracking)"
            if groups and (risky or repeated):
                groups[-1] = True
        elif groups and (ch in _QUANTIFIERS or ch == "|"):
            groups[-1] = True
        i += 1
    if groups or in_class:
        return "is not balanced"
    return None


def _ids_of(vocab: Any, what: str) -> list[int]:
    if isinstance(vocab, dict):
        items = list(vocab.items())
        if len(items) > MAX_VOCAB:
            raise _bad(f"{what} has {len(items):,} entries, the limit is {MAX_VOCAB:,}")
        for token, idx in items:
            if len(token) > MAX_TOKEN_CHARS or not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
                raise _bad(f"{what} entry {token[:40]!r}: tokens of at most {MAX_TOKEN_CHARS} characters with "
                           f"non-negative integer ids")
        return [idx for _, idx in items]
    raise _bad(f"{what} must be an object of token: id")


def _check_model(model: Any) -> tuple[int, int]:
    if not isinstance(model, dict) or model.get("type") not in ("BPE", "WordPiece", "WordLevel", "Unigram"):
        kind = model.get("type") if isinstance(model, dict) else model
        raise _bad(f"model type {str(kind)[:40]!r} is not one of BPE, WordPiece, WordLevel, Unigram")
    if model["type"] == "Unigram":
        vocab = model.get("vocab")
        if not isinstance(vocab, list) or not vocab or len(vocab) > MAX_VOCAB or not all(
                isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and len(v[0]) <= MAX_TOKEN_CHARS
                and isinstance(v[1], (int, float)) and not isinstance(v[1], bool) for v in vocab):
            raise _bad(f"Unigram vocab must list 1 to {MAX_VOCAB:,} [token, score] pairs")
        return len(vocab), len(vocab) - 1
    if model.get("dropout") not in (None, 0, 0.0):
        raise _bad("BPE dropout makes encoding random; validators could not agree on a model's tokens")
    ids = _ids_of(model.get("vocab"), "model vocab")
    if not ids:
        raise _bad("model vocab is empty")
    merges = model.get("merges", [])
    if model["type"] == "BPE":
        if not isinstance(merges, list) or len(merges) > MAX_MERGES:
            raise _bad(f"BPE merges must be a list of at most {MAX_MERGES:,} pairs")
        for merge in merges:
            parts = merge.split(" ") if isinstance(merge, str) else merge
            if not (isinstance(parts, list) and len(parts) == 2 and all(isinstance(p, str) for p in parts)):
                raise _bad(f"BPE merge {str(merge)[:40]!r} is not a pair of tokens")
    return len(ids), max(ids)


def _check_added(added: Any) -> int:
    if not isinstance(added, list) or len(added) > MAX_ADDED_TOKENS:
        raise _bad(f"added_tokens must be a list of at most {MAX_ADDED_TOKENS:,} tokens")
    top = -1
    for tok in added:
        if not isinstance(tok, dict) or not isinstance(tok.get("content"), str) or not tok["content"] or \
                len(tok["content"]) > MAX_TOKEN_CHARS:
            raise _bad(f"each added token needs content of 1 to {MAX_TOKEN_CHARS} characters")
        idx = tok.get("id")
        if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
            raise _bad(f"added token {tok['content'][:40]!r} has no valid id")
        top = max(top, idx)
    return top


def separator_id(eos_token_id: Any, vocab_rows: int) -> int:
    """The id a document starts and ends with: config.json's eos_token_id (the first, when it lists several)."""
    eos = eos_token_id[0] if isinstance(eos_token_id, list) and eos_token_id else eos_token_id
    if not isinstance(eos, int) or isinstance(eos, bool) or not 0 <= eos < vocab_rows:
        raise ModelRejected("bad_tokenizer", f"config.json eos_token_id must be an id below {vocab_rows:,} "
                                             f"(documents are scored between EOS tokens), got {eos_token_id!r}")
    return eos
