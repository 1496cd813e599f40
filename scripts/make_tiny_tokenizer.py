"""Train the "builtin:tiny" tokenizer on the synthetic corpus and write it as package data.

Run once; the output (subnet/assets/tiny_tokenizer/) is committed, so nobody trains it at run
time and every validator and miner tokenizes identically. Byte-level BPE, so any UTF-8 text
(FineWeb included) encodes without unknown tokens.

    .venv/bin/python scripts/make_tiny_tokenizer.py [--vocab-size 2048] [--documents 4000]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from subnet.data.synthetic import synthetic_documents
from subnet.data.tokenizer import EOS_TOKEN, PAD_TOKEN, TINY_TOKENIZER_DIR

CORPUS_SEED = "tiny-tokenizer-corpus"


def train(vocab_size: int, n_documents: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],  # ids 0 and 1
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = [d.text for d in synthetic_documents(CORPUS_SEED, n_documents)]
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--documents", type=int, default=4000)
    parser.add_argument("--out", type=Path, default=TINY_TOKENIZER_DIR)
    args = parser.parse_args()

    tokenizer = train(args.vocab_size, args.documents)
    assert tokenizer.token_to_id(EOS_TOKEN) == 0 and tokenizer.token_to_id(PAD_TOKEN) == 1
    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(args.out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": EOS_TOKEN,
        "bos_token": EOS_TOKEN,
        "pad_token": PAD_TOKEN,
        "unk_token": None,
        "model_max_length": 1_000_000,
        "clean_up_tokenization_spaces": False,
    }
    (args.out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"out": str(args.out), "vocab_size": tokenizer.get_vocab_size(), "documents": args.documents}))


if __name__ == "__main__":
    main()
