"""Tokenizers by reference: the one shipped in the package, or any Hugging Face tokenizer.

"builtin:tiny" is a 2,048-token byte-level BPE trained on the synthetic corpus
(scripts/make_tiny_tokenizer.py) and shipped as package data, so local runs and tests need no
download. Any other reference goes to `AutoTokenizer.from_pretrained` (local cache or the Hub),
never with remote code. Loaded tokenizers are cached per reference: a round tokenizes once per
tokenizer, and loading one is not free.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

BUILTIN_PREFIX = "builtin:"
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
TINY_TOKENIZER_DIR = ASSETS_DIR / "tiny_tokenizer"
BUILTIN_TOKENIZERS = {"tiny": TINY_TOKENIZER_DIR}


class TokenizerError(ValueError):
    """A tokenizer reference cannot be resolved or loaded."""


@lru_cache(maxsize=16)
def load_tokenizer(ref: str):
    """A transformers fast tokenizer for `ref`, with an EOS token set (the evaluation appends it)."""
    if not isinstance(ref, str) or not ref:
        raise TokenizerError(f"tokenizer reference must be a non-empty string, got {ref!r}")
    if ref.startswith(BUILTIN_PREFIX):
        tokenizer = _load_builtin(ref)
    else:
        tokenizer = _load_pretrained(ref)
    if tokenizer.eos_token_id is None:
        raise TokenizerError(f"tokenizer {ref!r} has no eos_token; documents could not be terminated")
    return tokenizer


def _load_builtin(ref: str):
    from transformers import PreTrainedTokenizerFast

    name = ref[len(BUILTIN_PREFIX):]
    directory = BUILTIN_TOKENIZERS.get(name)
    if directory is None:
        raise TokenizerError(f"unknown builtin tokenizer {ref!r}; known: {sorted(BUILTIN_PREFIX + n for n in BUILTIN_TOKENIZERS)}")
    path = directory / "tokenizer.json"
    if not path.is_file():
        raise TokenizerError(f"builtin tokenizer {ref!r} is missing its file {path}; run scripts/make_tiny_tokenizer.py")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(path),
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=1_000_000,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.name_or_path = ref
    return tokenizer


def _load_pretrained(ref: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(ref, trust_remote_code=False, use_fast=True)
    except Exception as e:  # transformers raises OSError, ValueError, HTTP errors...
        raise TokenizerError(f"cannot load tokenizer {ref!r}: {type(e).__name__}: {e}") from e
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # batching needs one; padded positions are never scored
    return tokenizer
