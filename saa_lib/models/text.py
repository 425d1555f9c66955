"""The BERT text encoder of GroundingDINO, built offline from local files.

GroundingDINO names its text encoder by ``text_encoder_type`` and calls ``from_pretrained`` on it; here that is always
a local directory holding ``vocab.txt`` + ``config.json`` + ``tokenizer_config.json``:

- ``bert-base-uncased``: the published vocabulary (a zoo file) and the published config (embedded in
  :mod:`saa_lib.weights`). Its weights are not needed: they are the ``bert.*`` tensors of the GroundingDINO
  checkpoint.
- ``tiny``: a small config and a procedurally generated WordPiece vocabulary (special tokens, punctuation, single
  characters and their ``##`` continuations, a few whole words) that tokenises any lowercase ASCII text.
"""
from __future__ import annotations

import json
import os
import string
from pathlib import Path

from saa_lib.records import SPECIAL_TOKENS
from saa_lib.weights.registry import BERT_BASE_UNCASED_CONFIG, resolve_checkpoint, weights_dir

#: tokenizer settings of bert-base-uncased (lower-casing WordPiece, 512 positions)
TOKENIZER_CONFIG: dict = {"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "BertTokenizer"}


#: whole words of the tiny vocabulary (anything else is spelled out character by character)
TINY_WORDS = (
    "defect", "anomaly", "damage", "flaw", "scratch", "hole", "crack", "on", "the", "of", "and", "broken", "part",
    "black", "white", "red", "blue", "yellow", "color", "spot", "thread", "wire", "contamination", "bent", "print",
)

#: bump when the tiny text encoder changes, so cache keys built from it change too
TINY_TEXT_VERSION = "tiny-bert-v1"


def tiny_vocab() -> list[str]:
    """Procedural WordPiece vocabulary: specials, punctuation, digits, letters, ``##``+digit/letter, whole words."""
    chars = string.digits + string.ascii_lowercase
    tokens = [*SPECIAL_TOKENS, *string.punctuation, *chars, *("##" + c for c in chars), *TINY_WORDS]
    return list(dict.fromkeys(tokens))  # unique, order kept


def tiny_bert_config(vocab_size: int) -> dict:
    """A 2-layer, 64-wide BERT config (GroundingDINO projects its output to 256 itself)."""
    cfg = dict(BERT_BASE_UNCASED_CONFIG)
    cfg.update(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
               vocab_size=vocab_size, architectures=["BertModel"])
    return cfg


def _write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` atomically unless the file already holds exactly it."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_text_encoder_dir(directory: str | os.PathLike, config: dict, vocab: list[str] | None = None) -> Path:
    """Make ``directory`` a local ``from_pretrained`` folder: ``config.json``, ``tokenizer_config.json`` and, when
    ``vocab`` is given, ``vocab.txt`` (one token a line). An existing ``vocab.txt`` is kept when ``vocab`` is None."""
    directory = Path(directory)
    _write_if_changed(directory / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
    _write_if_changed(directory / "tokenizer_config.json", json.dumps(TOKENIZER_CONFIG, indent=2) + "\n")
    if vocab is not None:
        _write_if_changed(directory / "vocab.txt", "\n".join(vocab) + "\n")
    if not (directory / "vocab.txt").exists():
        raise FileNotFoundError(f"{directory / 'vocab.txt'} is missing: the text encoder needs its vocabulary there")
    return directory


def tiny_text_encoder_dir(root: str | os.PathLike | None = None) -> Path:
    """The tiny text-encoder folder (written on first use under :func:`saa_lib.weights.weights_dir`); no network."""
    if root is None:
        root = weights_dir()
    vocab = tiny_vocab()
    return write_text_encoder_dir(Path(root) / TINY_TEXT_VERSION, tiny_bert_config(len(vocab)), vocab)


def bert_base_text_encoder_dir(vocab_path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The bert-base-uncased folder: the zoo's ``vocab.txt`` (downloaded and hash-checked if missing) with the
    embedded config beside it. With ``vocab_path`` (a ``vocab.txt`` you have), that file is used instead."""
    if vocab_path is None:
        vocab_file = resolve_checkpoint("bert_base_uncased_vocab", download=download)
        config_file = resolve_checkpoint("bert_base_uncased_config")  # embedded values; a file already there wins
        if config_file.parent != vocab_file.parent:
            raise AssertionError("the zoo keeps bert-base-uncased's vocab.txt and config.json in one folder")
        _write_if_changed(vocab_file.parent / "tokenizer_config.json", json.dumps(TOKENIZER_CONFIG, indent=2) + "\n")
        return vocab_file.parent
    vocab_path = Path(vocab_path)
    if not vocab_path.is_file():
        raise FileNotFoundError(f"{vocab_path}: no such vocabulary file (expected bert-base-uncased's vocab.txt)")
    from saa_lib.models.common import file_fingerprint

    lines = vocab_path.read_text(encoding="utf-8").splitlines()
    folder = weights_dir() / f"bert-base-uncased-{file_fingerprint(vocab_path)}"
    return write_text_encoder_dir(folder, BERT_BASE_UNCASED_CONFIG, lines)


def bert_base_with_tiny_vocab_dir() -> Path:
    """bert-base-uncased's config with the tiny procedural vocabulary: the offline stand-in for random-init timing
    runs when the real ``vocab.txt`` is not at hand (token ids differ, sizes and speed do not)."""
    return write_text_encoder_dir(weights_dir() / f"bert-base-uncased-{TINY_TEXT_VERSION}-vocab",
                                  BERT_BASE_UNCASED_CONFIG, tiny_vocab())


def load_tokenizer(directory: str | os.PathLike):
    """A fast BERT tokenizer from a local folder; never contacts the model hub."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)


def build_bert(directory: str | os.PathLike):
    """A randomly initialised ``BertModel`` from the folder's ``config.json`` (weights come from the detector's
    checkpoint, as the official loader overwrites them too)."""
    from transformers import BertConfig, BertModel

    return BertModel(BertConfig.from_pretrained(str(directory), local_files_only=True))
