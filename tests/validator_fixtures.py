"""Shared pieces for the validator's end-to-end tests: tiny trained models and a local subnet.

Models are trained once per test session (a few seconds on one CPU core) and shared: three
snapshots of one training run give three miners of clearly different quality.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from subnet.competitions import DEFAULT_COMPETITIONS, LLAMA_FAMILY, SamplingBudget

# A small copy of the 'tiny' competition: short documents and few of them keep rounds sub-second.
E2E_COMPETITION = replace(
    DEFAULT_COMPETITIONS["tiny"],
    max_seq_len=96,
    max_bytes=8 * 1024**2,
    architectures=LLAMA_FAMILY,
    sampling=SamplingBudget(pages=3, page_size=20, max_documents=60),
)
COMPETITIONS = {"tiny": E2E_COMPETITION}
SNAPSHOT_STEPS = {"weak": 0, "mid": 15, "strong": 60}


def competitions_file(path: Path) -> Path:
    path.write_text(json.dumps([E2E_COMPETITION.to_dict()]))
    return path


def train_snapshots(out_dir: Path, steps: dict[str, int] = SNAPSHOT_STEPS, seed: int = 0) -> dict[str, Path]:
    """Train one tiny Llama and save it after each number of steps: more steps, lower loss."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from subnet.data.synthetic import synthetic_documents
    from subnet.data.tokenizer import load_tokenizer

    torch.manual_seed(seed)
    tok = load_tokenizer(E2E_COMPETITION.tokenizer)
    vocab = -(-len(tok) // 64) * 64
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
        intermediate_size=128, max_position_embeddings=E2E_COMPETITION.max_seq_len, tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    texts = [d.text for d in synthetic_documents("validator-e2e-training", 300)]
    ids = np.concatenate([np.array(tok.encode(t) + [tok.eos_token_id], dtype=np.int64) for t in texts])
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    seq, batch = 64, 8
    paths: dict[str, Path] = {}
    done = 0
    for label, target in sorted(steps.items(), key=lambda kv: kv[1]):
        model.train()
        while done < target:
            starts = rng.integers(0, len(ids) - seq - 1, size=batch)
            x = torch.from_numpy(np.stack([ids[s : s + seq + 1] for s in starts]))
            loss = model(input_ids=x[:, :-1], labels=x[:, :-1]).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
        path = out_dir / label
        model.save_pretrained(path, safe_serialization=True)
        for extra in path.iterdir():  # keep exactly what a validator downloads
            if extra.name not in ("config.json", "model.safetensors"):
                extra.unlink()
        paths[label] = path
    return paths


@dataclass
class Miner:
    label: str
    hotkey: str
    uid: int
    ref: str = ""
    block: int = 0


@dataclass
class LocalSubnet:
    """A LocalChain, a LocalStore and registered wallets under one directory."""

    root: Path
    block_time: float = 0.2
    netuid: int = 1
    miners: dict[str, Miner] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from subnet.chain.keys import create_wallet
        from subnet.chain.local import LocalChain
        from subnet.hub.local import LocalStore

        self.chain_path = self.root / "chain.sqlite"
        self.wallet_path = self.root / "wallets"
        self.store = LocalStore(self.root / "store")
        self.validator_wallet = create_wallet(self.wallet_path, "validator", "default")
        self.chain = LocalChain(self.chain_path, self.netuid, wallet=self.validator_wallet,
                                block_time=self.block_time)
        self.chain.register(self.validator_wallet.hotkey.ss58_address, self.validator_wallet.coldkeypub.ss58_address,
                            stake=1000.0, validator_permit=True)
        self.chain.set_weights_rate_limit(2)
        self.chain.set_commit_rate_limit(0)

    @property
    def network(self) -> str:
        return f"devnet:{self.chain_path}"

    def add_miner(self, label: str) -> Miner:
        from subnet.chain.keys import create_wallet

        wallet = create_wallet(self.wallet_path, f"miner-{label}", "default")
        uid = self.chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address)
        miner = Miner(label, wallet.hotkey.ss58_address, uid)
        self.miners[label] = miner
        return miner

    def _miner_chain(self, label: str):
        from subnet.chain.keys import create_wallet
        from subnet.chain.local import LocalChain

        wallet = create_wallet(self.wallet_path, f"miner-{label}", "default")
        return LocalChain(self.chain_path, self.netuid, wallet=wallet, block_time=self.block_time)

    def publish(self, label: str, model_dir: Path, competition: str = "tiny") -> Miner:
        """What a miner does: upload privately, commit the hotkey-bound hash, then make the repo public."""
        from subnet.hub.hashing import directory_hash, secure_hash
        from subnet.hub.model_ref import ModelRef

        miner = self.miners.get(label) or self.add_miner(label)
        commit = self.store.upload(model_dir, "miners", label, private=True)
        ref = ModelRef("miners", label, commit, secure_hash(directory_hash(model_dir), miner.hotkey),
                       competition).encode()
        chain = self._miner_chain(label)
        miner.block = chain.commit(ref)
        chain.close()
        self.store.make_public("miners", label)
        miner.ref = ref
        return miner

    def publish_hostile(self, label: str, model_dir: Path) -> Miner:
        """A public repo whose revision holds a pickle next to valid weights (written past upload's checks)."""
        from subnet.hub.hashing import directory_hash, secure_hash
        from subnet.hub.model_ref import ModelRef

        miner = self.miners.get(label) or self.add_miner(label)
        repo = self.store.root / "miners" / label
        commit = "ab" * 20
        shutil.copytree(model_dir, repo / commit)
        (repo / commit / "pytorch_model.bin").write_bytes(b"\x80\x04\x95 pickle payload")
        (repo / "repo.json").write_text(json.dumps({"private": False}))
        ref = ModelRef("miners", label, commit, secure_hash(directory_hash(repo / commit), miner.hotkey),
                       "tiny").encode()
        chain = self._miner_chain(label)
        miner.block = chain.commit(ref)
        chain.close()
        miner.ref = ref
        return miner

    def advance_to(self, block: int) -> None:
        """Jump the chain forward (no sleeping) so that commitments become old enough."""
        now = self.chain.current_block()
        if now < block:
            self.chain.advance(block - now)

    def close(self) -> None:
        self.chain.close()


def query_state(db: Path, sql: str) -> list:
    """Rows from a validator's state file, read-only, as another process would see them ([] while locked)."""
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:
        return []
