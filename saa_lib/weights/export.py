"""Write a model set in the official file formats, with everything that rebuilds it; load such a set back.

:func:`export_models` writes into one folder:

- ``sam.pth``: SAM as a plain state dict (what ``segment_anything``'s builders load);
- ``groundingdino.pth``: ``{"model": state_dict}`` (GroundingDINO's release format);
- ``groundingdino_config.py``: the Swin-T OGC config (SLConfig format) with this set's overrides, its
  ``text_encoder_type`` naming the ``bert/`` folder beside it;
- ``bert/``: ``config.json``, ``vocab.txt``, ``tokenizer_config.json`` and ``model.safetensors`` (the ``bert.*``
  tensors of the detector), so ``AutoTokenizer`` / ``BertModel.from_pretrained`` work on the folder offline;
- ``saliency.pth``: the saliency backbone's timm feature-extractor state dict;
- ``manifest.json``: SAM sizes, GroundingDINO overrides and input sizes, the saliency backbone spec (timm name and
  arguments, mean/std, input size), whether each part is meaningful, the sha256 of every file and a digest per tensor.

:func:`load_manifest` rebuilds the same models from such a folder (``--models manifest=DIR/manifest.json``); it is
also how fine-tuned checkpoints are brought in: edit the files, keep the manifest's sizes, drop or refresh the hashes.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import torch

from ..safeio import write_bytes

MANIFEST_FORMAT = "saa-workbook-models/1"
FILES = {"sam": "sam.pth", "gdino": "groundingdino.pth", "gdino_config": "groundingdino_config.py",
         "saliency": "saliency.pth", "bert_weights": "bert/model.safetensors", "bert_config": "bert/config.json",
         "bert_vocab": "bert/vocab.txt", "bert_tokenizer_config": "bert/tokenizer_config.json"}


class ManifestError(ValueError):
    """A manifest folder that cannot be loaded (message names the file and what to do)."""


# ---------------------------------------------------------------- digests
def sha256_file(path: str | os.PathLike, block: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


def tensor_digest(t: torch.Tensor) -> str:
    """sha1 of a tensor's dtype, shape and bytes (CPU, contiguous): equal digests mean identical tensors."""
    t = t.detach().cpu().contiguous()
    h = hashlib.sha1(f"{t.dtype}|{tuple(t.shape)}|".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def state_digests(state: dict) -> dict[str, str]:
    """``{name: tensor_digest}`` of a state dict (non-tensor entries skipped)."""
    return {k: tensor_digest(v) for k, v in state.items() if torch.is_tensor(v)}


def combined_digest(digests: dict[str, str]) -> str:
    """One sha256 over the sorted ``name=digest`` lines."""
    return hashlib.sha256("".join(f"{k}={v}\n" for k, v in sorted(digests.items())).encode()).hexdigest()


# ---------------------------------------------------------------- atomic writes
def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


# ---------------------------------------------------------------- export
def _gdino_overrides(gdino) -> dict:
    """The config fields of ``gdino`` that differ from the packaged Swin-T OGC config (read off the model)."""
    from saa_lib.models.gdino import TINY_GDINO

    tr = gdino.transformer
    found = dict(enc_layers=tr.num_encoder_layers, dec_layers=tr.num_decoder_layers, num_queries=gdino.num_queries)
    base = dict(enc_layers=6, dec_layers=6, num_queries=900)
    over = {k: v for k, v in found.items() if v != base[k]}
    if set(over) - set(TINY_GDINO):
        raise AssertionError(f"unexpected GroundingDINO overrides {over}")
    # training-time memory savers, off in this project's builds: outputs are the same either way
    return {**over, "use_checkpoint": False, "use_transformer_ckpt": False}


def gdino_config_text(overrides: dict, text_encoder_dir: str) -> str:
    """The packaged Swin-T OGC config file followed by ``overrides`` and ``text_encoder_type`` (SLConfig format)."""
    from saa_lib.models.gdino import gdino_config_path

    lines = [gdino_config_path().read_text(encoding="utf-8").rstrip("\n"), "",
             "# model-set overrides (written by saa export-models)"]
    lines += [f"{k} = {v!r}" for k, v in {**overrides, "text_encoder_type": text_encoder_dir}.items()]
    return "\n".join(lines) + "\n"


def export_models(models, out_dir: str | os.PathLike) -> Path:
    """Write ``models`` (a :class:`saa_lib.models.Models` with GroundingDINO, SAM and saliency) into ``out_dir``;
    returns the manifest path. Every file is written atomically; an existing manifest in ``out_dir`` is replaced
    only after all files are in place."""
    from safetensors.torch import save as save_safetensors

    from saa_lib.models.sam import SAM_SIZES

    if models.gdino is None or models.sam is None:
        raise ValueError("export_models needs a full model set (GroundingDINO, SAM and saliency), not a saliency-only "
                         "one")
    sal = models.saliency
    if getattr(sal, "timm_kwargs", None) is None:
        raise ValueError(f"saliency backbone {sal.name}: unknown timm arguments, cannot describe it in a manifest")
    out = Path(out_dir).expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)

    sam_state = {k: v.detach().cpu() for k, v in models.sam.state_dict().items()}
    gdino_state = {k: v.detach().cpu() for k, v in models.gdino.state_dict().items()}
    sal_state = {k: v.detach().cpu() for k, v in sal.body.state_dict().items()}
    bert_state = {k[len("bert."):]: v.contiguous() for k, v in gdino_state.items() if k.startswith("bert.")}
    overrides = _gdino_overrides(models.gdino)
    tok = models.gdino.tokenizer
    vocab = [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])]
    bert_cfg = models.gdino.bert.config if hasattr(models.gdino.bert, "config") else None
    if bert_cfg is None:
        from saa_lib.weights.registry import BERT_BASE_UNCASED_CONFIG
        cfg = dict(BERT_BASE_UNCASED_CONFIG)
        cfg["hidden_size"] = int(bert_state["embeddings.word_embeddings.weight"].shape[1])
    else:
        cfg = bert_cfg.to_dict()
    from saa_lib.models.text import TOKENIZER_CONFIG

    sam_variant = models.sam_variant or "vit_h"
    written = {
        "sam": _torch_bytes(sam_state),
        "gdino": _torch_bytes({"model": gdino_state}),
        "gdino_config": gdino_config_text(overrides, str(out / "bert")).encode(),
        "saliency": _torch_bytes(sal_state),
        "bert_weights": save_safetensors(bert_state, metadata={"format": "pt"}),
        "bert_config": (json.dumps(cfg, indent=2, sort_keys=True) + "\n").encode(),
        "bert_vocab": ("\n".join(vocab) + "\n").encode(),
        "bert_tokenizer_config": (json.dumps(TOKENIZER_CONFIG, indent=2) + "\n").encode(),
    }
    for key, data in written.items():
        write_bytes(out / FILES[key], data)
    manifest = {
        "format": MANIFEST_FORMAT,
        "source": {"kind": models.kind, "identity": models.identity, "description": models.describe()},
        "meaningful": dict(models.parts_meaningful),
        "sam": {"file": FILES["sam"], "variant": sam_variant,
                "sizes": {k: (list(v) if isinstance(v, tuple) else v) for k, v in SAM_SIZES[sam_variant].items()}},
        "groundingdino": {"file": FILES["gdino"], "config": FILES["gdino_config"],
                          "base_config": "GroundingDINO_SwinT_OGC.py",
                          "overrides": overrides, "text_encoder_dir": "bert",
                          "min_size": int(models.gdino_min_size), "max_size": int(models.gdino_max_size)},
        "saliency": {"file": FILES["saliency"], "name": sal.name, "timm_name": sal.name,
                     "timm_kwargs": {k: (list(v) if isinstance(v, tuple) else v) for k, v in sal.timm_kwargs.items()},
                     "features_only": True, "out_indices": [1, 2, 3], "mean": list(sal.mean), "std": list(sal.std),
                     "input_size": sal.input_size},
        "sha256": {FILES[k]: hashlib.sha256(v).hexdigest() for k, v in written.items()},
        "tensor_digests": {"sam": combined_digest(state_digests(sam_state)),
                           "groundingdino": combined_digest(state_digests(gdino_state)),
                           "saliency": combined_digest(state_digests(sal_state))},
    }
    path = out / "manifest.json"
    write_bytes(path, (json.dumps(manifest, indent=1) + "\n").encode())
    return path


# ---------------------------------------------------------------- load
def read_manifest(path: str | os.PathLike, verify: bool = True) -> tuple[dict, Path]:
    """(manifest, folder). ``verify``: check the sha256 of every file it lists (raises :class:`ManifestError`)."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "manifest.json"
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest; write one with `saa export-models tiny DIR`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ManifestError(f"{path}: not a readable JSON manifest ({err})") from err
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"{path}: format {manifest.get('format')!r} is not {MANIFEST_FORMAT!r}; export again "
                            "with `saa export-models`")
    folder = path.parent
    for rel, digest in (manifest.get("sha256") or {}).items():
        f = folder / rel
        if not f.is_file():
            raise ManifestError(f"{f}: listed in {path} but missing; export the model set again")
        if verify and digest and sha256_file(f) != digest:
            raise ManifestError(f"{f}: sha256 differs from {path}; if you replaced it on purpose (e.g. fine-tuned "
                                f"weights), remove its entry from the manifest's \"sha256\"")
    return manifest, folder


def saliency_from_spec(spec: dict, state_file: str | os.PathLike, identity: str, meaningful: bool):
    """The :class:`~saa_lib.models.backbone.SaliencyBackbone` a manifest's ``saliency`` entry describes."""
    from saa_lib.models.common import torch_load
    from saa_lib.models.backbone import SaliencyBackbone, timm_features

    kwargs = dict(spec.get("timm_kwargs") or {})
    body = timm_features(spec["timm_name"], **kwargs)
    state = torch_load(state_file, "saliency backbone")
    try:
        body.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ManifestError(f"{state_file}: does not fit timm {spec['timm_name']} {kwargs}: {err}") from err
    return SaliencyBackbone(body, spec["name"], spec["mean"], spec["std"], meaningful=meaningful, identity=identity,
                            input_size=int(spec.get("input_size", 256)), timm_kwargs=kwargs).eval()


def load_manifest(path: str | os.PathLike, device="cpu", verify: bool = True):
    """The :class:`saa_lib.models.Models` described by a manifest (see :func:`export_models`)."""
    from saa_lib.models.gdino import build_gdino, load_gdino_checkpoint
    from saa_lib.models.sam import load_sam_checkpoint, sam_from_sizes
    from saa_lib.models import Models

    manifest, folder = read_manifest(path, verify=verify)
    s, g, sal = manifest["sam"], manifest["groundingdino"], manifest["saliency"]
    meaningful = {k: bool(v) for k, v in (manifest.get("meaningful") or {}).items()}
    sam = load_sam_checkpoint(sam_from_sizes(s["sizes"]).eval(), folder / s["file"])
    gdino = build_gdino(folder / g.get("text_encoder_dir", "bert"), **g.get("overrides", {}))
    report = load_gdino_checkpoint(gdino, folder / g["file"])
    ident = combined_digest(manifest.get("sha256") or {})[:16]
    saliency = saliency_from_spec(sal, folder / sal["file"], f"{sal['name']}:manifest-{ident}",
                                  meaningful.get("saliency", False))
    source = manifest.get("source", {}).get("kind", "paths")
    kind = source if source in ("tiny", "random") else "paths"  # tiny/random sets stay labelled NOT meaningful
    identity = f"manifest|{ident}|gdino_size={g['min_size']}x{g['max_size']}"
    device = torch.device(device)
    return Models(gdino=gdino.to(device), sam=sam.to(device), saliency=saliency.to(device), kind=kind,
                  gdino_min_size=int(g["min_size"]), gdino_max_size=int(g["max_size"]), identity=identity,
                  device=device, parts_meaningful=meaningful or {"gdino": False, "sam": False, "saliency": False},
                  reports={"gdino": report}, sam_variant=s.get("variant", ""))
