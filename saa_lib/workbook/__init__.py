"""What the notebook series is built from: ``series`` (set-up, images, configurations, figures; re-exported here, so a
notebook starts with ``from saa_lib import workbook`` and ``wb = workbook.setup(...)``), ``viz`` (figures),
``explorer`` (the interactive explorer of notebook 06), ``known_case`` (the hand-built known case), ``course`` (the
course map's pipeline picture and metrics primer), ``exercises`` (``check``: exercises that answer back; their
checkers in ``checks``) and ``report`` (the series run as a report).
Nothing here loads a model or touches the network at import time."""
from .exercises import check
from .series import (BANNER, MAX_FIGURE_BYTES, NOT_MEANINGFUL, NOTEBOOKS, PROMPTS, SAMPLES_MISSING, Figures, Item,
                     Workbook, banner, category_runs, choose_saliency_backbone, few_images_note, is_meaningful,
                     make_config, notebooks_dir, open_data, paper_table, pick, project_root, real_datasets,
                     resolve_models, saliency_images, saliency_line, sample_item, setup, shared_samples, side_by_side, stage_items,
                     switched_off, synthetic_root)
