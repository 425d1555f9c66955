"""Sphinx configuration of the book: the executed notebook series, rendered by MyST-NB without re-executing.

``saa_lib.workbook.book`` assembles the source folder (this file, the pages of ``book/``, the executed notebooks, the docs
pages, MathJax) and runs Sphinx on it; nothing here fetches anything from the network.
"""
project = "SAA+ workbook"
author = "saa-workbook contributors"
copyright = "saa-workbook contributors"

extensions = ["myst_nb", "sphinx.ext.mathjax"]
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
root_doc = "index"

# ---- notebooks: render the executed copies as they are
nb_execution_mode = "off"  # executed once, by papermill, before the build
nb_output_stderr = "show"  # warnings stay visible; an error output is a failed build (checked by saa_lib.workbook.book)
nb_render_markdown_format = "myst"  # Markdown outputs (tables) may hold $...$ maths
nb_ipywidgets_js = {}  # no widget manager from a CDN: widget outputs are replaced by a note before the build
# cells tagged remove-cell / remove-input / remove-output are dropped by MyST-NB itself (its default tag handling)

# ---- Markdown and maths
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
myst_update_mathjax = False  # its update targets MathJax 3; the book serves MathJax 2 from _static/mathjax
# MathJax 2.7 from the jupyter-server-mathjax package, copied into _static/mathjax by saa_lib.workbook.book (offline)
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
mathjax2_config = {
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]], "processEscapes": True},
    # the package ships the STIX-Web fonts only
    "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web", "imageFont": None},
    "fast-preview": {"disabled": True},  # one rendering, not a rough preview first
    "menuSettings": {"zoom": "None"},
    "showMathMenu": False,
    "messageStyle": "none",  # no "Typesetting math" box
}
suppress_warnings = ["myst.header"]  # Markdown outputs of cells start at any heading level

# ---- HTML
html_theme = "sphinx_book_theme"
html_title = "SAA+ workbook"
html_static_path = ["_static"]
html_css_files = ["book.css"]
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
}


def setup(app):
    # MathJax on every page, not only on pages with maths: the navigation shows the notebooks' titles ($\mathcal{P}^L$)
    app.set_html_assets_policy("always")
