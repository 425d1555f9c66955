"""What the notebook series is built from: ``series`` (set-up, images, configurations, figures; re-exported here, so a
notebook starts with ``from saa_lib import workbook`` and ``wb = workbook.setup(...)``), ``viz`` (figures),
``explorer`` (the interactive explorer of notebook 06), ``notebook_tables`` (the notebooks' own tables as DataFrames,
re-exported here), ``known_case`` (the hand-built known case), ``course`` (the course map's pipeline picture and
metrics primer), ``exercises`` (``check``: exercises that answer back; their checkers in ``checks``), ``parameters``
(``check_parameters``: every notebook parameter checked in the set-up cell) and ``report`` (tables in the paper's
layouts, ``show`` for a notebook, the series run as a report).
Nothing here loads a model or touches the network at import time."""
from .exercises import check
from .notebook_tables import (behaviour_settings_table, category_settings_table, dataset_table, prompt_entries_table,
                              regions_table, saliency_forms_table, variant_switches_table, weights_table)
from .parameters import ParameterError, check_parameters
from .report import show
from .series import (BANNER, MAX_FIGURE_BYTES, NOT_MEANINGFUL, NOTEBOOKS, PROMPTS, SAMPLES_MISSING, Figures, Item,
                     Workbook, banner, category_runs, choose_saliency_backbone, few_images_note, is_meaningful,
                     make_config, notebooks_dir, open_data, paper_table, pick, project_root, real_datasets,
                     resolve_models, saliency_images, saliency_line, sample_item, setup, shared_samples, side_by_side, stage_items,
                     switched_off, synthetic_root)
