"""The per-category tables of SAA+ (``saa_lib/resources/saa_tables.yaml``): language prompts, property prompts
(object count, K, area ratio), the class-agnostic templates and the paper's results. Data only; no torch."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml

#: the tables, by name: one per data set of the paper, plus the workbook's synthetic set
TABLE_NAMES = ("mvtec", "visa", "ksdd2", "mtd", "synthetic")


@lru_cache(maxsize=1)
def load_tables() -> dict:
    """The prompt and property tables, as loaded from the packaged YAML."""
    text = resources.files("saa_lib.resources").joinpath("saa_tables.yaml").read_text()
    raw = yaml.safe_load(text)
    lang = {k: v for k, v in raw["language_prompts"].items() if isinstance(v, dict)}
    prop = dict(raw["property_prompts"])
    lang["synthetic"] = raw["synthetic_tables"]["language_prompts"]
    prop["synthetic"] = raw["synthetic_tables"]["property_prompts"]
    return {
        "language": lang,
        "property": prop,
        "templates": {"code": raw["language_prompts"]["class_agnostic_templates"],
                      "paper": raw["language_prompts"]["paper_class_agnostic"]},
        "results_paper": raw["results_paper"],
    }


def known_categories() -> dict[str, list[str]]:
    """``{table: [category, ...]}`` for every table."""
    tables = load_tables()["language"]
    return {t: sorted(tables[t]) for t in TABLE_NAMES}


def find_table(category: str, table: str | None = None) -> str | None:
    """The table that holds ``category`` (``table`` first if given), or ``None``."""
    lang = load_tables()["language"]
    order = ([table] if table in lang else []) + [t for t in TABLE_NAMES if t != table]
    return next((t for t in order if category in lang[t]), None)
