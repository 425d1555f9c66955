"""Segment Anything: the official ViT-H/L/B architectures and a tiny one of the same classes.

Checkpoints are what ``segment_anything`` ships: a state dict saved directly with ``torch.save`` (keys
``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*``), loaded strictly as ``sam_model_registry[v](checkpoint)``
does, but mapped to CPU first so GPU-saved files load on CPU-only machines.
"""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import torch

from saa_lib.models.common import seeded, strip_prefix, torch_load
from saa_lib.weights.registry import SAM_VARIANTS
#: ViT width of each official variant, read from ``image_encoder.patch_embed.proj.weight`` to name a file's variant
_WIDTH_TO_VARIANT = {1280: "vit_h", 1024: "vit_l", 768: "vit_b"}

#: the tiny SAM: 256-px input, 16x16 image embedding of 32 channels, 2 ViT blocks, 1 decoder block
TINY_SAM = dict(img_size=256, patch_size=16, embed_dim=64, depth=2, num_heads=2, global_attn_indexes=(1,),
                window_size=4, prompt_embed_dim=32, decoder_depth=1, decoder_mlp_dim=64, decoder_heads=2,
                iou_head_hidden_dim=32)
TINY_SAM_VERSION = "tiny-sam-v1"
#: the official variants in the same terms (segment_anything/build_sam.py)
_OFFICIAL_DECODER = dict(img_size=1024, patch_size=16, window_size=14, prompt_embed_dim=256, decoder_depth=2,
                         decoder_mlp_dim=2048, decoder_heads=8, iou_head_hidden_dim=256)
SAM_SIZES = {
    "vit_h": dict(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31), **_OFFICIAL_DECODER),
    "vit_l": dict(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23), **_OFFICIAL_DECODER),
    "vit_b": dict(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11), **_OFFICIAL_DECODER),
    "tiny": TINY_SAM,
}


def sam_from_sizes(sizes: dict, modeling=None):
    """A ``Sam`` of the given sizes (keys of :data:`TINY_SAM`), random init, built from ``modeling`` (default
    ``segment_anything.modeling``; any module with the same classes, e.g. another copy of the package)."""
    if modeling is None:
        import segment_anything.modeling as modeling
    ImageEncoderViT, MaskDecoder, PromptEncoder = modeling.ImageEncoderViT, modeling.MaskDecoder, modeling.PromptEncoder
    Sam, TwoWayTransformer = modeling.Sam, modeling.TwoWayTransformer
    c = sizes
    grid = c["img_size"] // c["patch_size"]
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=c["img_size"], patch_size=c["patch_size"], embed_dim=c["embed_dim"], depth=c["depth"],
            num_heads=c["num_heads"], mlp_ratio=4, out_chans=c["prompt_embed_dim"], qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=True,
            global_attn_indexes=tuple(c["global_attn_indexes"]), window_size=c["window_size"]),
        prompt_encoder=PromptEncoder(
            embed_dim=c["prompt_embed_dim"], image_embedding_size=(grid, grid),
            input_image_size=(c["img_size"], c["img_size"]), mask_in_chans=16),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=c["decoder_depth"], embedding_dim=c["prompt_embed_dim"],
                                          mlp_dim=c["decoder_mlp_dim"], num_heads=c["decoder_heads"]),
            transformer_dim=c["prompt_embed_dim"], iou_head_depth=3, iou_head_hidden_dim=c["iou_head_hidden_dim"]),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )


def build_sam(variant: str = "vit_h", seed: int = 0):
    """A randomly initialised (seeded) ``segment_anything.modeling.Sam`` in eval mode.

    ``variant``: ``vit_h`` | ``vit_l`` | ``vit_b`` (official sizes, 1024-px input) or ``tiny`` (256-px input).
    """
    if variant == "tiny":
        with seeded(seed):
            sam = sam_from_sizes(TINY_SAM)
    elif variant in SAM_VARIANTS:
        from segment_anything import sam_model_registry

        with seeded(seed):
            sam = sam_model_registry[variant](checkpoint=None)
    else:
        raise ValueError(f"unknown SAM variant {variant!r}; choose one of {SAM_VARIANTS + ('tiny',)}")
    return sam.eval()


def sam_variant_of(state_dict: dict) -> str | None:
    """``vit_h`` / ``vit_l`` / ``vit_b`` judged from the patch-embedding width, ``None`` if it is none of them."""
    w = state_dict.get("image_encoder.patch_embed.proj.weight")
    return _WIDTH_TO_VARIANT.get(int(w.shape[0])) if w is not None else None


def load_sam_checkpoint(sam, path: str | os.PathLike, trusted: bool = False):
    """Load an official-format SAM state dict into ``sam`` (strict); returns ``sam`` in eval mode.

    Raises ``ValueError`` naming the file when it is not a SAM checkpoint or holds another variant.
    """
    path = Path(path)
    state = torch_load(path, "SAM", trusted=trusted)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not any(str(k).startswith(("image_encoder.", "module.image_encoder."))
                                              for k in state):
        raise ValueError(f"{path}: not a SAM checkpoint (no 'image_encoder.*' tensors). "
                         "Use the files from the segment-anything release (sam_vit_h_4b8939.pth, ...).")
    state = strip_prefix(state)
    own = sam.image_encoder.patch_embed.proj.weight.shape[0]
    theirs = state["image_encoder.patch_embed.proj.weight"].shape[0]
    if own != theirs:
        found = sam_variant_of(state)
        hint = f"pass sam_variant={found!r}" if found else "it is no official SAM variant"
        raise ValueError(f"{path}: holds a SAM with a {theirs}-wide image encoder, but the model built is "
                         f"{own}-wide; {hint}.")
    try:
        sam.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path}: does not fit the SAM architecture: {err}") from err
    return sam.eval()
