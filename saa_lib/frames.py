"""Tables are pandas DataFrames; this module shows them, with one rule everywhere: an undefined value (NaN, None) is
written ``n/a`` — never 0, never a blank — in the HTML a notebook shows (:func:`styled`), in markdown files
(:func:`markdown`) and in CSV files (:func:`to_csv`, which ``pandas.read_csv`` reads back as NaN).

A frame may carry how its numbers are written in ``frame.attrs``:

- ``"formats"``: ``{column: format spec}`` (e.g. ``".2f"``, ``"+.2f"``, ``"d"``); a column without one is written with
  ``.2f`` when it holds floats and as it is otherwise;
- ``"notes"``: a line shown under the table (e.g. why some cells are ``n/a``).

A string cell is written as it is: a table says "not applicable" (the paper reports no number, the count of a mean
row) with :data:`NOT_APPLICABLE` (``"-"``), and keeps NaN for what is undefined. A named index (e.g. ``method``) becomes the first
column. Importing this module loads pandas only.
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import pandas as pd

#: how an undefined value is written
NA = "n/a"
#: a cell with nothing to show (the paper reports no number; the count of a mean row): not a number, not undefined
NOT_APPLICABLE = "-"


def table(rows, columns, index: str | None = None, formats: dict | None = None, notes: str = "") -> pd.DataFrame:
    """A DataFrame of ``rows`` (lists in the order of ``columns``) with its display settings in ``attrs``;
    ``index``: the column that becomes the (named) index."""
    df = pd.DataFrame(list(rows), columns=list(columns))
    if index is not None:
        df = df.set_index(index)
    df.attrs.update(formats=dict(formats or {}), notes=notes)
    return df


def is_missing(value) -> bool:
    """True for None, NaN and pandas' NA."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, Real) and not isinstance(value, Integral) and math.isnan(value)


def cell_text(value, spec: str | None = None) -> str:
    """One cell as text: ``n/a`` when missing, a string as it is, a number with ``spec`` (default: ``.2f`` for a float,
    as it is for an integer)."""
    if is_missing(value):
        return NA
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if spec is None:
        spec = ".2f" if isinstance(value, Real) and not isinstance(value, Integral) else ""
    return format(value, spec)


def _with_index(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a named index turned into its first column (attrs kept)."""
    if df.index.name is None and isinstance(df.index, pd.RangeIndex):
        return df
    out = df.reset_index()
    out.attrs = dict(df.attrs)
    return out


def formats_of(df: pd.DataFrame) -> dict:
    """``{column: format spec or None}`` for every column of ``df`` (its ``attrs["formats"]``)."""
    given = df.attrs.get("formats") or {}
    return {c: given.get(c) for c in df.columns}


def formatted(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell of ``df`` as its text (:func:`cell_text`), the named index as the first column."""
    flat = _with_index(df)
    specs = formats_of(flat)
    out = pd.DataFrame({c: [cell_text(v, specs[c]) for v in flat[c]] for c in flat.columns}, dtype=object)
    out.attrs = dict(flat.attrs)
    return out


def _numeric(series: pd.Series) -> bool:
    """True when every cell of a column is a number, undefined or not applicable (the column is right-aligned)."""
    values = [v for v in series if not is_missing(v) and not (isinstance(v, str) and v == NOT_APPLICABLE)]
    return bool(values) and all(isinstance(v, Real) and not isinstance(v, bool) for v in values)


def markdown(df: pd.DataFrame) -> str:
    """``df`` as a markdown (pipe) table by ``DataFrame.to_markdown``: numbers right-aligned, missing values ``n/a``,
    then its notes (``attrs["notes"]``) on a line of their own."""
    flat = _with_index(df)
    align = tuple("right" if _numeric(flat[c]) else "left" for c in flat.columns)
    text = formatted(df).to_markdown(index=False, colalign=align, disable_numparse=True) + "\n"
    notes = df.attrs.get("notes")
    return text + (f"\n{notes}\n" if notes else "")


def styled(df: pd.DataFrame):
    """``df`` as a pandas ``Styler`` for display (HTML in JupyterLab and in the book): each column written with its
    format, missing values ``n/a`` (``na_rep``), the notes as a caption under the table."""
    flat = _with_index(df)
    specs = formats_of(flat)
    style = flat.style.format({c: (lambda v, s=specs[c]: cell_text(v, s)) for c in flat.columns}, na_rep=NA)
    style = style.hide(axis="index")
    numeric = [c for c in flat.columns if _numeric(flat[c])]
    if numeric:
        style = style.set_properties(subset=numeric, **{"text-align": "right"})
    notes = df.attrs.get("notes")
    if notes:
        style = style.set_caption(notes).set_table_styles(
            [{"selector": "caption", "props": "caption-side: bottom; text-align: left; font-size: 0.9em;"}])
    return style


def to_csv(df: pd.DataFrame, float_format: str = "%.2f") -> str:
    """``df`` as CSV text (``DataFrame.to_csv``): floats with ``float_format``, missing values ``n/a``, no index unless
    it is named."""
    return _with_index(df).to_csv(index=False, na_rep=NA, float_format=float_format)
