"""GroundingDINO (Swin-T OGC) built from the config packaged in groundingdino-py, fully offline.

The package builds its text encoder with ``BertModel.from_pretrained(text_encoder_type)`` and
``AutoTokenizer.from_pretrained(text_encoder_type)``. During :func:`build_gdino` both are redirected to local-only
versions: the BERT is built from its config alone (its weights are the ``bert.*`` tensors of the checkpoint) and the
tokenizer from a local folder (see :mod:`saa_lib.models.text`). Checkpoints are the official
``{"model": state_dict}`` files, possibly with ``module.`` prefixes, loaded non-strictly as the official code does;
what did not match is reported, and too large a gap is an error.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import warnings
from pathlib import Path

import torch

from saa_lib.models.common import LoadReport, seeded, strip_prefix, torch_load

GDINO_CONFIG = "GroundingDINO_SwinT_OGC.py"
#: the tiny detector: the packaged config with one encoder and one decoder layer and 100 queries (hidden size stays
#: 256: the text position embeddings are fixed at 256)
TINY_GDINO = dict(enc_layers=1, dec_layers=1, num_queries=100)
TINY_GDINO_VERSION = "tiny-gdino-v1"
#: keys a current ``transformers`` no longer keeps in the state dict (non-persistent buffers); harmless if present
BENIGN_UNEXPECTED = ("bert.embeddings.position_ids",)
#: a checkpoint that leaves more than this fraction of the model's tensors unset is refused
MAX_MISSING_FRACTION = 0.05


def gdino_config_path(name: str = GDINO_CONFIG) -> Path:
    """Path of a config file shipped inside the installed ``groundingdino`` package (no import of the package)."""
    spec = importlib.util.find_spec("groundingdino")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("groundingdino is not installed: pip install groundingdino-py==0.4.0")
    path = Path(list(spec.submodule_search_locations)[0]) / "config" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the installed groundingdino-py lacks this config; reinstall groundingdino-py")
    return path


@contextlib.contextmanager
def _offline_text_encoder():
    """Redirect groundingdino's text-encoder loaders to local-only builds for the duration of the block."""
    from groundingdino.util import get_tokenlizer

    from saa_lib.models.text import build_bert, load_tokenizer

    saved = get_tokenlizer.get_tokenlizer, get_tokenlizer.get_pretrained_language_model
    get_tokenlizer.get_tokenlizer = load_tokenizer
    get_tokenlizer.get_pretrained_language_model = build_bert
    try:
        yield
    finally:
        get_tokenlizer.get_tokenlizer, get_tokenlizer.get_pretrained_language_model = saved


def build_gdino(text_encoder_dir: str | os.PathLike, tiny: bool = False, seed: int = 0, **overrides):
    """A randomly initialised (seeded) ``GroundingDINO`` in eval mode, with ``.tokenizer`` from ``text_encoder_dir``.

    ``tiny``: apply :data:`TINY_GDINO`; ``overrides``: further config fields. Gradient checkpointing (a training
    memory saver) is switched off; it changes neither the weights nor the outputs.
    """
    from groundingdino.models import build_model
    from groundingdino.util.slconfig import SLConfig

    text_encoder_dir = Path(text_encoder_dir)
    if not (text_encoder_dir / "vocab.txt").is_file() or not (text_encoder_dir / "config.json").is_file():
        raise FileNotFoundError(f"{text_encoder_dir}: a text-encoder folder needs vocab.txt and config.json")
    args = SLConfig.fromfile(str(gdino_config_path()))
    args.device = "cpu"
    args.text_encoder_type = str(text_encoder_dir)
    args.use_checkpoint = False
    args.use_transformer_ckpt = False
    for key, value in {**(TINY_GDINO if tiny else {}), **overrides}.items():
        setattr(args, key, value)
    with seeded(seed), _offline_text_encoder(), warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", UserWarning)
        model = build_model(args)
    return model.eval()


def load_gdino_checkpoint(model, path: str | os.PathLike, trusted: bool = False,
                          max_missing_fraction: float = MAX_MISSING_FRACTION) -> LoadReport:
    """Load an official GroundingDINO checkpoint (``torch.load(path)["model"]``) into ``model``, non-strictly.

    Returns the :class:`LoadReport`; warns when tensors are missing or unexpected, raises ``ValueError`` naming the file
    when more than ``max_missing_fraction`` of the model's tensors found nothing to load or a shape differs.
    """
    path = Path(path)
    ckpt = torch_load(path, "GroundingDINO", trusted=trusted)
    if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict):
        state = ckpt["model"]
    elif isinstance(ckpt, dict) and ckpt and all(torch.is_tensor(v) for v in ckpt.values()):
        state = ckpt  # a bare state dict
    else:
        top = list(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path}: not a GroundingDINO checkpoint (expected a dict with a 'model' state dict, found "
                         f"{top}). Use groundingdino_swint_ogc.pth from the GroundingDINO release.")
    state = strip_prefix(state)
    n_model = len(model.state_dict())
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches raise even when not strict
        raise ValueError(f"{path}: does not fit the GroundingDINO Swin-T OGC architecture: {err}") from err
    report = LoadReport(str(path), n_model, tuple(result.missing_keys),
                        tuple(k for k in result.unexpected_keys if k not in BENIGN_UNEXPECTED))
    if report.fraction_missing > max_missing_fraction:
        raise ValueError(f"{report}\nMore than {max_missing_fraction:.0%} of the model is missing from the file: "
                         "it is not a GroundingDINO Swin-T OGC checkpoint (or it is damaged).")
    if report.missing or report.unexpected:
        warnings.warn(f"GroundingDINO checkpoint loaded with gaps: {report}", stacklevel=2)
    model.eval()
    return report


def load_gdino(path: str | os.PathLike, text_encoder_dir: str | os.PathLike, tiny: bool = False, seed: int = 0,
               trusted: bool = False, **overrides):
    """Build (see :func:`build_gdino`) and load ``path``; returns ``(model, report)``."""
    model = build_gdino(text_encoder_dir, tiny=tiny, seed=seed, **overrides)
    report = load_gdino_checkpoint(model, path, trusted=trusted)
    return model, report
