"""Checkpoints and the models built from them.

``registry`` (re-exported here): every checkpoint the workbook knows (official URL, sha256, where it is kept) and the
download policy, with no model code, so ``import saa_lib.weights`` stays light. ``download``: hash-checked, atomic
file downloads. ``zoo``: :func:`~saa_lib.weights.zoo.load_models`, the model sets (official, local paths, tiny,
random, manifest). ``export``: a model set written in the official file formats, with a manifest that rebuilds it.
"""
from .registry import (CHECKPOINTS, SALIENCY_BACKBONES, SAM_VARIANTS, Checkpoint, auto_kind, download_weights,
                       how_to_get_weights, missing_weights, require_weights, resolve_checkpoint, weights_dir,
                       weights_for)

__all__ = ["CHECKPOINTS", "SALIENCY_BACKBONES", "SAM_VARIANTS", "Checkpoint", "auto_kind", "download_weights",
           "how_to_get_weights", "missing_weights", "require_weights", "resolve_checkpoint", "weights_dir",
           "weights_for"]
