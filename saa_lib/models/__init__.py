"""Model builders behind :mod:`saa_lib.zoo`: SAM, GroundingDINO, the saliency backbone and the BERT text encoder.

Each module builds one family in its official, ``tiny`` (small, random, seeded) or ``random`` (official size, random)
form and loads checkpoints in the official file formats. Heavy libraries (segment_anything, groundingdino, timm,
transformers) are imported inside the functions, so importing this package is cheap.
"""
from saa_lib.models.saliency import SaliencyBackbone, load_saliency_backbone

__all__ = ["SaliencyBackbone", "load_saliency_backbone"]
