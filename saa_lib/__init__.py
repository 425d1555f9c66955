"""saa-workbook: SAA / SAA+ zero-shot anomaly segmentation (Cao et al., 2023) as a small, readable library.

Modules, one per pipeline stage: ``generator`` (GroundingDINO), ``refiner`` (SAM), ``prompts`` (P^L, P^P, P^S, P^C),
``fusion``, ``pipeline`` (composition + stage cache), plus ``zoo`` (checkpoints, model builders), ``data`` (datasets),
``metrics``, ``viz`` and ``cli``. Importing the package loads no model and touches no network.
"""
from .config import ABLATION_VARIANTS, VARIANTS, SAAConfig, SaliencyConfig, variant_config

__version__ = "0.1.0"
__all__ = ["SAAConfig", "SaliencyConfig", "variant_config", "VARIANTS", "ABLATION_VARIANTS", "__version__"]
