"""Model assembly: :func:`load_models` builds GroundingDINO, SAM and the saliency backbone into a
:class:`~saa_lib.models.Models` set from the checkpoints of :mod:`saa_lib.weights` (re-exported here). Kinds of
models:

- ``official``: SAM (``vit_h`` by default), GroundingDINO Swin-T OGC and the saliency backbone with published weights;
- ``paths``: the same architectures loaded from files you name (``checkpoints={"sam": ..., "gdino": ..., ...}``);
- ``tiny``: the same classes at small sizes, random init, seeded — for tests and demos, NOT meaningful;
- ``random``: official sizes, random init — for timing only, NOT meaningful;
- ``auto``: ``official`` when every official file is in the weights folder, else ``tiny`` (the notebooks' default).

Nothing here touches the network at import time.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from saa_lib.weights.download import HashMismatchError, MissingFileError, check_hash_once
from saa_lib.models import Models
from saa_lib.models.common import file_fingerprint
from saa_lib.models.backbone import SALIENCY_BACKBONES, SaliencyBackbone, load_saliency_backbone
from saa_lib.weights.registry import (CHECKPOINTS, MODEL_KINDS, MODEL_PATH_KEYS, Checkpoint, auto_kind,
                                      download_weights, missing_weights, require_weights, resolve_checkpoint,
                                      weights_dir, weights_for)

__all__ = [
    "Checkpoint", "CHECKPOINTS", "KINDS", "Models", "SaliencyBackbone", "weights_dir", "resolve_checkpoint",
    "missing_weights", "require_weights", "download_weights", "weights_for", "load_models", "load_saliency_backbone",
    "load_saliency_only", "auto_kind", "zoo_files", "unpublished_files",
]

KINDS = MODEL_KINDS
PATH_KEYS = MODEL_PATH_KEYS


def zoo_files(sam_variant: str = "vit_h", saliency_backbone: str = "wide_resnet50_2") -> dict[str, str]:
    """``{checkpoints key: zoo name}`` of the files the official models read (the keys of ``checkpoints=``)."""
    names = {"sam": f"sam_{sam_variant}", "gdino": "groundingdino_swint_ogc", "bert_vocab": "bert_base_uncased_vocab"}
    if saliency_backbone == "wide_resnet50_2":
        names["saliency"] = "wide_resnet50_2"
    return names


def unpublished_files(sam_variant: str = "vit_h", saliency_backbone: str = "wide_resnet50_2") -> dict[str, Path]:
    """``{checkpoints key: path}`` of the official files in the weights folder whose hash is not the published one,
    each named in a warning: ``models="auto"`` loads them as your own files (as ``--models sam=PATH`` would) instead
    of refusing them as ``"official"`` does."""
    own = {}
    for key, name in zoo_files(sam_variant, saliency_backbone).items():
        ck = CHECKPOINTS[name]
        try:
            check_hash_once(ck.path, ck.known_hash)
        except HashMismatchError:
            own[key] = ck.path
            warnings.warn(f"{ck.path.name} in {ck.path.parent} is not the published {name} (its hash differs): "
                          f"models='auto' loads it as your own checkpoint, as --models {key}=PATH would; "
                          f"`saa download weights --force {name}` replaces it with the published file", stacklevel=3)
    return own


def load_models(kind: str = "official", device="cpu", sam_variant: str = "vit_h",
                saliency_backbone: str = "wide_resnet50_2", checkpoints: dict[str, str | Path] | None = None,
                seed: int = 0, download: bool = True) -> Models:
    """Build GroundingDINO, SAM and the saliency backbone.

    ``kind``: ``official`` (zoo files, downloaded and verified if missing; entries of ``checkpoints`` win),
    ``paths`` (``checkpoints={"sam": ..., "gdino": ..., "saliency": ...}`` local files, ``"bert_vocab"`` optional),
    ``tiny`` or ``random`` (seeded random init; warns "not meaningful"), ``auto`` (:func:`auto_kind`: ``official``
    when every file is in the weights folder, loading the ones that are not the published files as your own with a
    warning, see :func:`unpublished_files`; else ``tiny``; never downloads). Official files that are missing are
    reported together in one :class:`MissingFileError` before anything is built.
    ``checkpoints={"manifest": ".../manifest.json"}`` alone loads a set written by
    :func:`saa_lib.weights.export.export_models` (the other arguments play no part).
    """
    if checkpoints and "manifest" in checkpoints:
        if len(checkpoints) > 1:
            raise ValueError(f"manifest= names a whole model set; it cannot be combined with {sorted(checkpoints)}")
        from saa_lib.weights.export import load_manifest

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
    if kind == "auto":
        if checkpoints:
            raise ValueError("kind='auto' chooses between the weights folder and the tiny models; pass your own files "
                             "with kind='official' (they win over the folder) or kind='paths'")
        kind = auto_kind(sam_variant, saliency_backbone)
        if kind == "official":
            checkpoints, download = unpublished_files(sam_variant, saliency_backbone), False
    checkpoints = {k: Path(v).expanduser() for k, v in (checkpoints or {}).items()}
    unknown = set(checkpoints) - set(PATH_KEYS)
    if unknown:
        raise ValueError(f"unknown checkpoints keys {sorted(unknown)}; use {PATH_KEYS}")
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
        return Models(gdino=gdino.to(device), sam=sam.to(device), saliency=saliency.to(device), kind=kind,
                      gdino_min_size=min_size, gdino_max_size=max_size, identity=identity, device=device,
                      parts_meaningful={"gdino": False, "sam": False, "saliency": saliency.meaningful},
                      sam_variant="tiny" if tiny else sam_variant)

    # official / paths
    if kind == "paths":
        need = ["sam", "gdino"] + (["saliency"] if saliency_backbone == "wide_resnet50_2" else [])
        lacking = [k for k in need if k not in checkpoints]
        if lacking:
            raise ValueError(f"kind='paths' needs checkpoints for {lacking}: "
                             "checkpoints={'sam': '.../sam_vit_h_4b8939.pth', 'gdino': '.../groundingdino_swint_ogc.pth'"
                             ", 'saliency': '.../wide_resnet50_2-95faca4d.pth'}")
    zoo_names = zoo_files(sam_variant, saliency_backbone)
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
    return Models(gdino=gdino.to(device), sam=sam.to(device), saliency=saliency.to(device), kind=kind,
                  gdino_min_size=800, gdino_max_size=1333, identity=identity, device=device,
                  parts_meaningful={"gdino": True, "sam": True, "saliency": saliency.meaningful},
                  reports={"gdino": report}, sam_variant=sam_variant)


def load_saliency_only(name: str = "tf_efficientnet_lite0", kind: str = "official", device="cpu", seed: int = 0,
                       download: bool = True, path: str | Path | None = None) -> Models:
    """A :class:`Models` holding only the saliency backbone (``gdino`` and ``sam`` are ``None``): the P^S map alone
    runs without the detector weights. Arguments as :func:`saa_lib.models.backbone.load_saliency_backbone`."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {KINDS}")
    if kind == "auto":  # the backbone's own file decides (tf_efficientnet_lite0's weights are always here)
        kind = "official" if name not in CHECKPOINTS or CHECKPOINTS[name].path.is_file() else "tiny"
    saliency = load_saliency_backbone(name, kind=kind, device=device, path=path, seed=seed, download=download)
    return Models(gdino=None, sam=None, saliency=saliency, kind=kind, gdino_min_size=0, gdino_max_size=0,
                  identity=f"saliency-only|{kind}|saliency={saliency.identity}", device=torch.device(device),
                  parts_meaningful={"saliency": saliency.meaningful})
