"""Figures: overlays, qualitative grids, PR curves, ablation bars (colour-blind-safe maps, titled axes)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

CMAP = "viridis"


def _plt():
    import matplotlib.pyplot as plt  # imported on first use: importing saa_lib starts no GUI backend

    return plt


def colour_bar(fig, axes, top: float, label: str, fraction: float = 0.025):
    """One colour bar for ``axes`` that share the scale [0, ``top``] of :data:`CMAP`, labelled ``label``."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    cbar = fig.colorbar(ScalarMappable(Normalize(0, top), colormaps[CMAP]), ax=list(axes), fraction=fraction,
                        pad=0.02)
    cbar.set_label(label, fontsize=8)
    return cbar


def finish(fig, title: str = "", path: str | Path | None = None, dpi: int = 110, tight: bool = True):
    """Give ``fig`` its ``title`` and, with ``path``, save it there (``bbox_inches="tight"`` when ``tight``) and close
    it. Returns the figure."""
    if title:
        fig.suptitle(title, fontsize=10)
    if path is not None:
        fig.savefig(path, dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
        _plt().close(fig)
    return fig


def png_bytes(fig, dpi: int = 110) -> bytes:
    """``fig`` encoded as PNG (``bbox_inches="tight"``), then closed: for writing it atomically
    (:func:`saa_lib.safeio.write_bytes`)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def to_uint8_map(amap: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """(H, W) float -> (H, W) uint8 scaled by ``vmax`` (default: the map's max; an all-zero map stays zero)."""
    vmax = float(amap.max()) if vmax is None else vmax
    return (np.clip(amap / vmax, 0, 1) * 255).astype(np.uint8) if vmax > 0 else np.zeros(amap.shape, np.uint8)


def overlay(image: np.ndarray, amap: np.ndarray, alpha: float = 0.5, vmax: float | None = None) -> np.ndarray:
    """(H, W, 3) uint8: ``image`` blended with the colour-mapped anomaly map (resized to the image)."""
    from matplotlib import colormaps

    from ..fusion import resize_map

    m = resize_map(amap, image.shape[:2]) if amap.shape != image.shape[:2] else amap
    colour = colormaps[CMAP](to_uint8_map(m, vmax))[..., :3]
    weight = alpha * (to_uint8_map(m, vmax)[..., None] / 255.0)
    out = image / 255.0 * (1 - weight) + colour * weight
    return (out * 255).astype(np.uint8)


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: the boundary pixels of ``mask``."""
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask)


@dataclass(frozen=True)
class GridRow:
    """One row of :func:`qualitative_grid`: ``image`` (H, W, 3) uint8, its ground truth ``mask`` (any size, None: no
    outline), ``maps`` ``{column title: (h, w) float map of any size}`` and a ``label`` for the row."""

    image: np.ndarray
    mask: np.ndarray | None
    maps: dict
    label: str = ""


def thumbnail(image: np.ndarray, height: int) -> np.ndarray:
    """(height, W', 3) uint8: ``image`` resized to ``height`` rows, its aspect kept (bilinear)."""
    from PIL import Image

    h, w = image.shape[:2]
    size = (max(1, round(w * height / h)), height)
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).convert("RGB").resize(size, Image.BILINEAR))


def min_max(amap: np.ndarray) -> np.ndarray:
    """``amap`` scaled to [0, 1] (a constant map: all zeros)."""
    lo, hi = float(amap.min()), float(amap.max())
    return (amap - lo) / (hi - lo) if hi > lo else np.zeros_like(amap, dtype=np.float32)


def qualitative_grid(rows: list[GridRow], title: str = "", vmax: float | None = None, normalize: bool = False,
                     label: str = "anomaly score", height: int = 256, path: str | Path | None = None):
    """A grid like the paper's figures: one row per :class:`GridRow` — the image, the image with its ground truth
    outlined (magenta), then each map overlaid on the image — every image shown at ``height`` pixels with its own
    aspect. All maps share one colour scale (``vmax``, default their joint max; ``normalize``: each map min-max
    scaled first), drawn as one colour bar labelled ``label``."""
    plt = _plt()
    columns = list(dict.fromkeys(c for r in rows for c in r.maps))
    maps = [{c: min_max(m) if normalize else m for c, m in r.maps.items()} for r in rows]
    top = vmax if vmax is not None else max([float(m.max()) for r in maps for m in r.values()] + [1e-12])
    aspect = max(r.image.shape[1] / r.image.shape[0] for r in rows) if rows else 1.0
    ncol = 2 + len(columns)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(2.2 * aspect * ncol + 0.9, 2.2 * len(rows) + 0.4),
                             squeeze=False)
    for i, (row, row_maps) in enumerate(zip(rows, maps)):
        small = thumbnail(row.image, height)
        panels = [small, with_outline(small, row.mask)]
        panels += [overlay(small, row_maps[c], alpha=0.75, vmax=top) if c in row_maps else None for c in columns]
        for j, (ax, panel) in enumerate(zip(axes[i], panels)):
            if panel is not None:
                ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(["image", "ground truth", *columns][j], fontsize=9)
        if row.label:
            axes[i, 0].set_ylabel(row.label, fontsize=8)
    colour_bar(fig, axes.ravel(), top, label)
    return finish(fig, title, path)


def fate_chart(results: dict, title: str = "", path: str | Path | None = None):
    """One horizontal bar per ``{label: ImageResult}``: its candidates split by fate (kept, or the step that removed
    them), in the colours of :data:`FATE_COLOURS`."""
    plt = _plt()
    fates = ["threshold", "language", "property", "confidence", None]
    labels = list(results)
    counts = np.array([[sum(r.removed_by == f for r in results[k].regions) for f in fates] for k in labels], float)
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(labels) + 1.4))
    left = np.zeros(len(labels))
    for j, f in enumerate(fates):
        ax.barh(range(len(labels)), counts[:, j], left=left, color=FATE_COLOURS[f], label=fate_label(f))
        left += counts[:, j]
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("candidate regions")
    ax.set_title(title or "fate of every candidate", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return finish(fig, path=path, tight=False)


def pr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "", path=None):
    """Pixel precision-recall curves: ``{label: (precision, recall)}``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    for label, (p, r) in curves.items():
        ax.plot(r, p, label=label)
    ax.set_xlabel("recall (pixels)")
    ax.set_ylabel("precision (pixels)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title or "pixel precision-recall")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return finish(fig, path=path, tight=False)


def bar_chart(values: dict[str, float], ylabel: str, title: str = "", reference: dict[str, float] | None = None,
              path=None):
    """Bars of ``values`` (e.g. ablation max-F1 per variant), with the paper's values as markers if given."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.2 * len(values) + 2, 3.5))
    names = list(values)
    ax.bar(range(len(names)), [values[n] for n in names], color="#0072B2", label="this run")
    if reference:
        xs = [i for i, n in enumerate(names) if n in reference]
        ax.scatter(xs, [reference[names[i]] for i in xs], marker="D", color="#E69F00", zorder=3, label="paper")
        ax.legend(fontsize=8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    return finish(fig, path=path, tight=False)


# ----- panels for the notebooks -----------------------------------------------------------------------------------
#: Okabe-Ito colours (colour-blind safe) for region fates
FATE_COLOURS = {None: "#009E73", "language": "#E69F00", "property": "#D55E00", "confidence": "#CC79A7",
                "threshold": "#999999"}


def map_panels(image: np.ndarray, maps: dict, mask: np.ndarray | None = None, title: str = "",
               vmax: float | None = None, normalize: bool = False, label: str = "anomaly score", path=None,
               scores: dict | None = None):
    """One row: ``image`` with the ``mask`` outline (magenta), then each of ``maps`` ({title: (h, w) float}) overlaid.

    Maps share one colour scale (``vmax``, default their joint max) shown by a colour bar labelled ``label``;
    ``normalize=True`` min-max scales each map to [0, 1] first (for maps whose offset carries no meaning).
    ``scores`` ({title: image score}) adds each map's image score under its title.
    """
    plt = _plt()
    if normalize:
        maps = {k: (m - m.min()) / (m.max() - m.min()) if m.max() > m.min() else np.zeros_like(m)
                for k, m in maps.items()}
    top = vmax if vmax is not None else max([float(m.max()) for m in maps.values()] + [1e-12])
    extra = 0.17 * max(0, title.count("\n")) + (0.15 if scores else 0.0)  # inches for more lines of titles
    height = 2.9 + extra
    fig, axes = plt.subplots(1, len(maps) + 1, figsize=(2.6 * (len(maps) + 1) + 0.6, height), squeeze=False)
    if extra:
        fig.subplots_adjust(top=1 - (0.35 + extra) / height, bottom=0.32 / height)
    axes[0, 0].imshow(with_outline(image, mask))
    axes[0, 0].set_title("image + ground truth" if mask is not None else "image", fontsize=9)
    for ax, (name, amap) in zip(axes[0, 1:], maps.items()):
        ax.imshow(overlay(image, amap, alpha=0.75, vmax=top))
        score = (scores or {}).get(name)
        ax.set_title(name if score is None else f"{name}\nimage score {score:.3f}", fontsize=9)
    for ax in axes[0]:
        ax.set_xticks([])
        ax.set_yticks([])
    colour_bar(fig, axes[0], top, label)
    return finish(fig, title, path, dpi=100)


def with_outline(image: np.ndarray, mask: np.ndarray | None, colour=(255, 0, 255), width: int = 2) -> np.ndarray:
    """(H, W, 3) uint8: a copy of ``image`` with a ``width``-pixel outline drawn just outside ``mask`` (any size,
    resized to the image; None or empty: no outline)."""
    from PIL import Image
    from scipy import ndimage

    out = image.copy()
    if mask is None or not mask.any():
        return out
    m = np.asarray(mask, bool)
    if m.shape != image.shape[:2]:
        m = np.asarray(Image.fromarray(m).resize(image.shape[1::-1], Image.NEAREST), bool)
    grown = ndimage.binary_dilation(m, iterations=width)
    out[grown & ~m] = colour
    return out


def compare_results(image: np.ndarray, results: dict, mask: np.ndarray | None = None, title: str = "",
                    vmax: float | None = None, max_boxes: int = 60):
    """Two rows, one column per ``{label: ImageResult}``: the candidate boxes coloured by fate, then the anomaly
    map overlaid on ``image`` (ground-truth ``mask`` outlined), all maps on one colour scale with a colour bar."""
    plt = _plt()
    n = len(results)
    top = vmax if vmax is not None else max([float(r.anomaly_map.max()) for r in results.values()] + [1e-12])
    fig, axes = plt.subplots(2, n, figsize=(3.0 * n + 0.8, 6.2), squeeze=False)
    shown = with_outline(image, mask)
    for j, (label, res) in enumerate(results.items()):
        kept = sum(r.removed_by is None for r in res.regions)
        region_boxes(shown, res, title=f"{label}: {kept} of {len(res.regions)} kept", ax=axes[0, j],
                     max_boxes=max_boxes)
        axes[1, j].imshow(overlay(shown, res.anomaly_map, alpha=0.75, vmax=top))
        axes[1, j].set_title(f"{label}: map (image score {res.image_score:.2f})", fontsize=9)
        axes[1, j].set_xticks([])
        axes[1, j].set_yticks([])
    colour_bar(fig, axes[1], top, "anomaly score", fraction=0.03)
    return finish(fig, title)


def region_boxes(image: np.ndarray, result, title: str = "", ax=None, max_boxes: int = 60):
    """``image`` with the candidate boxes of an :class:`saa_lib.pipeline.ImageResult`, coloured by their fate
    (kept, or the prompt that removed them); at most ``max_boxes``, the most confident first."""
    from matplotlib.patches import Patch, Rectangle

    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.6))
    ax.imshow(image)
    regions = sorted(result.regions, key=lambda r: -r.confidence)[:max_boxes]
    for r in reversed(regions):
        x0, y0, x1, y1 = r.box
        colour = FATE_COLOURS.get(r.removed_by, "#0072B2")
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=2.2 if r.removed_by is None else 1.0,
                               ec=colour, ls="-" if r.removed_by is None else "--"))
    fates = list(dict.fromkeys(r.removed_by for r in regions))
    ax.legend(handles=[Patch(fc="none", ec=FATE_COLOURS.get(f, "#0072B2"),
                             label="kept" if f is None else ("below threshold / not prompted" if f == "threshold"
                                                             else f"removed: {f}")) for f in fates],
              fontsize=7, loc="lower left", framealpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"{len(result.regions)} candidates", fontsize=9)
    return ax.figure


def pixel_pr(maps: np.ndarray, masks: np.ndarray, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Pixel precision and recall of one category's maps (N, H, W) against masks (N, H, W) bool, after the same
    category-wide min-max normalisation the metrics use; at most ``max_points`` points (for plotting)."""
    from sklearn.metrics import precision_recall_curve

    from ..metrics import normalize_category

    norm = normalize_category(maps).ravel()
    p, r, _ = precision_recall_curve(np.asarray(masks, bool).ravel(), norm)
    step = max(1, len(p) // max_points)
    return p[::step], r[::step]


# ----- the explorer's picture: drawn with PIL at the size it is shown ---------------------------------------------
def fate_label(fate) -> str:
    """What a region's ``removed_by`` means, for legends."""
    return "kept" if fate is None else ("below θ_box / not prompted" if fate == "threshold" else f"removed: {fate}")


def fate_legend_html() -> str:
    """An HTML legend of the box colours (placed beside the picture, never over it)."""
    items = "".join(f'<div><span style="display:inline-block;width:11px;height:11px;border:2px solid {c};'
                    f'margin-right:5px"></span>{fate_label(f)}</div>' for f, c in FATE_COLOURS.items())
    return f'<div style="font-size:11px;line-height:1.45">{items}</div>'


class MapCanvas:
    """The explorer's picture of one image, drawn with PIL at exactly the size it is displayed (no rescaling in the
    browser, no matplotlib figure per change).

    Built once per image: the image resized to ``side`` pixels on its long side with the ground-truth outline, the
    colour lookup table. :meth:`render` then only resizes the (R, R) anomaly map, colours and blends it, draws the
    candidate boxes and encodes a JPEG (4:4:4, quality 92: a few ms where PNG takes tens): two panels (boxes coloured
    by fate | map overlaid), a colour bar, and two lines below: ``footer`` (e.g. the models' tag) and the ``note`` of
    :meth:`render` (each on its own line, so a long footer never hides the note).
    """

    BAR = 50  #: width of the colour bar column, pixels
    GAP = 8
    TITLE = 18
    LINE = 15  #: height of one text line below the panels

    def __init__(self, image: np.ndarray, mask: np.ndarray | None = None, side: int = 360, alpha: float = 0.75,
                 footer: str = ""):
        from matplotlib import colormaps
        from PIL import Image, ImageFont

        h, w = image.shape[:2]
        s = side / max(h, w)
        self.size = (max(1, round(w * s)), max(1, round(h * s)))  # (width, height) of one panel
        self.scale = (self.size[0] / w, self.size[1] / h)
        small = np.asarray(Image.fromarray(image).convert("RGB").resize(self.size, Image.LANCZOS))
        self.base = with_outline(small, mask, width=2)  # (h, w, 3) uint8
        self.lut = (colormaps[CMAP](np.arange(256))[:, :3] * 255).astype(np.float32)  # (256, 3)
        self.alpha = alpha
        self.font = ImageFont.load_default(size=12)
        self.small = ImageFont.load_default(size=10)
        self.width = 2 * self.size[0] + 2 * self.GAP + self.BAR
        self.footer = footer.replace("\u2014", "-")  # the built-in font has no dashes
        self.height = self.size[1] + self.TITLE + 2 * self.LINE + 6

    def map_panel(self, amap: np.ndarray, vmax: float) -> np.ndarray:
        """(h, w, 3) uint8: the (r, r) map resized (bilinear) to the panel, coloured, blended onto the base image."""
        from PIL import Image

        m = np.asarray(Image.fromarray(np.asarray(amap, np.float32), mode="F").resize(self.size, Image.BILINEAR))
        u = to_uint8_map(m, vmax)
        weight = (self.alpha / 255.0) * u[..., None].astype(np.float32)
        return (self.base * (1 - weight) + self.lut[u] * weight).astype(np.uint8)

    def render(self, result, title: str = "", vmax: float | None = None, max_boxes: int = 60, note: str = "") -> bytes:
        """JPEG bytes of ``result`` (an :class:`saa_lib.pipeline.ImageResult`): boxes by fate (at most ``max_boxes``,
        the kept ones and then the most confident; kept ones labelled with their phrase) | the anomaly map on one
        scale (``vmax``, default its max); ``note`` (e.g. the settings) on the line below the footer."""
        import io

        from PIL import Image, ImageDraw

        top = float(result.anomaly_map.max()) if vmax is None else float(vmax)
        canvas = Image.new("RGB", (self.width, self.height), "white")
        pw, ph = self.size
        canvas.paste(Image.fromarray(self.base), (0, self.TITLE))
        canvas.paste(Image.fromarray(self.map_panel(result.anomaly_map, top)), (pw + self.GAP, self.TITLE))
        draw = ImageDraw.Draw(canvas)
        regions = sorted(result.regions, key=lambda r: (r.removed_by is not None, -r.confidence))[:max_boxes]
        sx, sy = self.scale
        for r in reversed(regions):
            x0, y0, x1, y1 = r.box
            draw.rectangle([x0 * sx, y0 * sy + self.TITLE, x1 * sx - 1, y1 * sy + self.TITLE - 1],
                           outline=FATE_COLOURS.get(r.removed_by, "#0072B2"), width=3 if r.removed_by is None else 1)
        for r in regions:  # the phrase P^L reads (tokens above θ_text) on each kept box
            if r.removed_by is None:
                xy = (r.box[0] * sx + 1, max(self.TITLE, r.box[1] * sy + self.TITLE - 13))
                label = r.phrase[:16] or "(no phrase)"
                draw.rectangle(draw.textbbox(xy, label, font=self.small), fill="white")
                draw.text(xy, label, fill="black", font=self.small)
        kept = sum(r.removed_by is None for r in result.regions)
        draw.text((2, 2), f"candidates: {kept} of {len(result.regions)} kept", fill="black", font=self.font)
        draw.text((pw + self.GAP + 2, 2), title or f"anomaly map, image score {result.image_score:.3f}",
                  fill="black", font=self.font)
        x = 2 * pw + 2 * self.GAP
        ramp = self.lut[np.linspace(255, 0, ph).astype(np.uint8)].astype(np.uint8)  # (ph, 3), top = max
        canvas.paste(Image.fromarray(np.repeat(ramp[:, None], 14, 1)), (x, self.TITLE))
        draw.text((x + 17, self.TITLE), f"{top:.3g}", fill="black", font=self.font)
        draw.text((x + 17, self.TITLE + ph - 13), "0", fill="black", font=self.font)
        lines = [(self.footer, "#B00000"), (note, "black")] if self.footer else [(note, "black")]
        for i, (text, colour) in enumerate(lines):
            draw.text((2, self.TITLE + ph + 3 + i * self.LINE), text, fill=colour, font=self.font)
        buf = io.BytesIO()
        canvas.save(buf, format="JPEG", quality=92, subsampling=0)
        return buf.getvalue()
