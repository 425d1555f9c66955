"""A hand-built *known case*: a synthetic image with candidate regions whose fate under each prompt is known in
advance, so the notebooks illustrate each prompt with real numbers whatever the detector weights are; and its fate
table (what removed each candidate under each configuration).

Nothing here loads a model or touches the network at import time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KnownCase:
    """A synthetic image with hand-built candidate regions whose fate under each prompt is known in advance.

    image: (H, W, 3) uint8; mask: (R, R) bool ground truth at the evaluation resolution R; stages: the
    :class:`saa_lib.records.StageOutputs` a detector could have produced (the saliency map is real: computed with
    the given backbone, for the saliency settings of the config given); names: one description per candidate, in
    order; kinds: the kind of prompt that found each; config: the :class:`saa_lib.config.SAAConfig` it was built for
    (its behaviour and saliency settings); source: one line on where its parts come from (a figure's footer).
    """

    image: np.ndarray
    mask: np.ndarray
    prompts: object
    stages: object
    names: list[str]
    kinds: list[str]
    config: object = None
    source: str = ""


def _box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def _disc(shape, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 <= r * r


def known_case(backbone, config, category: str = "washer", defect: str = "hole", seed: int = 0,
               size: int = 256, n_normal: int = 6) -> KnownCase:
    """Hand-made candidates for a ``category`` image with one ``defect`` (synthetic, ``seed``), built so that each
    prompt changes the outcome (an illustration of the mechanisms, not a model of a trained detector's output).

    The candidates (confidences chosen so that each prompt changes the outcome):

    - the true defect, found by the expert prompt, confidence 0.30;
    - the whole object, phrase = the object word (0.45): P^L removes it (the paper's class-agnostic prompts hold no
      object word; the phrase is then the prompt's first word and P^P removes it);
    - the whole object, phrase = the prompt's first word, e.g. "defect" (0.40): P^P removes it (larger than
      ``max_area_ratio`` of the object);
    - ``n_normal`` small patches of intact surface, phrase "stain" (0.36 down to 0.31): without P^S they out-rank
      the defect and P^C keeps them instead of it;
    - a background patch, phrase of the defect (0.29): off the object.

    ``backbone``: a :class:`saa_lib.weights.zoo.SaliencyBackbone` (the saliency map is really computed); ``config``: the
    :class:`saa_lib.config.SAAConfig` whose behaviour, saliency settings and evaluation resolution are used.
    """
    from ..data.synthetic import synthesize
    from ..masks import resize_masks
    from ..prompts.language import category_prompts, prompts_identity
    from ..prompts.saliency import saliency_key, saliency_map
    from ..records import Detections, StageOutputs
    from .series import NOT_MEANINGFUL

    s = synthesize(category, defect, seed=seed, index=0, size=size)
    prompts = category_prompts(category, "synthetic", behaviour=config.behaviour)
    agnostic = next(i for i, e in enumerate(prompts.entries) if e.kind == "agnostic")
    expert = next(i for i, e in enumerate(prompts.entries) if e.kind == "expert")
    entry_ids = (agnostic, expert)
    captions = [prompts.entries[i].caption for i in entry_ids]
    tokens = [c.replace(".", " . ").split() for c in captions]
    word = defect.replace("_", " ").split()[0]
    rng = np.random.default_rng(seed)
    free = s.allowed & ~_disc(s.mask.shape, *np.argwhere(s.mask).mean(0), 0.12 * size)
    radius = 0.035 * size
    patches = []
    for _ in range(n_normal):
        cand = np.argwhere(free)
        cy, cx = cand[rng.integers(len(cand))] + 0.5
        disc = _disc(s.mask.shape, cy, cx, radius) & s.support
        patches.append(disc)
        free &= ~_disc(s.mask.shape, cy, cx, 2.5 * radius)
    obj_word = prompts.object_word.split()[-1]
    named = obj_word if obj_word in tokens[0] else tokens[0][0]  # the paper's agnostic prompts hold no object word
    rows = [("true defect", s.mask, 1, word, 0.30),
            (f"whole object, phrase '{named}'", s.support, 0, named, 0.45),
            (f"whole object, phrase '{tokens[0][0]}'", s.support, 0, tokens[0][0], 0.40)]
    rows += [(f"intact surface {i + 1}", p, 1, "stain", 0.36 - 0.01 * i) for i, p in enumerate(patches)]
    background = ~s.support & ~_disc(s.mask.shape, size / 2, size / 2, 0.45 * size)
    if background.any():  # an object on a background (a texture has none)
        by, bx = np.argwhere(background)[rng.integers(background.sum())] + 0.5
        rows += [("background", _disc(s.mask.shape, by, bx, radius) & ~s.support, 1, word, 0.29)]
    token_conf = np.zeros((len(rows), max(len(t) for t in tokens)), np.float32)
    for r, (_, _, e, phrase, conf) in enumerate(rows):
        toks = tokens[e]
        hits = [j for j, t in enumerate(toks) if t == phrase] or [0]
        token_conf[r, :len(toks)] = 0.02
        token_conf[r, hits] = conf
    hw = s.mask.shape
    det = Detections(boxes=np.array([_box(m) for _, m, *_ in rows], np.float32),
                     scores=np.array([c for *_, c in rows], np.float32),
                     entry=np.array([e for _, _, e, _, _ in rows], np.int32), token_conf=token_conf, captions=captions,
                     tokens=tokens, image_hw=hw)
    obj_tokens = [prompts.object_word.split()]
    obj = Detections(boxes=np.array([_box(s.support)], np.float32), scores=np.array([0.6], np.float32),
                     entry=np.zeros(1, np.int32), token_conf=np.full((1, len(obj_tokens[0])), 0.6, np.float32),
                     captions=[prompts.object_word], tokens=obj_tokens, image_hw=hw)
    r = config.eval_resolution
    masks = resize_masks(np.stack([m for _, m, *_ in rows]), r)
    obj_masks = resize_masks(s.support[None], r)
    sal = saliency_map(s.image, backbone, config.saliency, (r, r))
    st = StageOutputs(image_hw=hw, entry_ids=entry_ids, prompts=prompts_identity(prompts), detections=det,
                      masks=masks, object_detections=obj, object_masks=obj_masks)
    st = st.with_saliency(saliency_key(st, prompts, config), sal)
    weights = "ImageNet weights" if backbone.meaningful else NOT_MEANINGFUL
    return KnownCase(s.image, resize_masks(s.mask[None], r)[0], prompts, st, [name for name, *_ in rows],
                     [prompts.entries[entry_ids[e]].kind for _, _, e, _, _ in rows], config,
                     source=f"hand-made candidates; saliency: {backbone.name}, {weights}")


def candidate_regions(case: KnownCase, result) -> dict:
    """``{candidate index: Region}`` of an :class:`saa_lib.pipeline.ImageResult` on ``case``. A variant without P^L
    never asks the expert prompts: its regions are the class-agnostic candidates only (the others are missing)."""
    asked = [i for i, kind in enumerate(case.kinds) if len(result.regions) == len(case.names) or kind == "agnostic"]
    return dict(zip(asked, result.regions))


def fused_names(case: KnownCase, result) -> list[str]:
    """Names of the candidates of ``case`` that ``result`` fused into its anomaly map (in candidate order)."""
    return [case.names[i] for i, r in candidate_regions(case, result).items() if r.removed_by is None]


def fate_table(case: KnownCase, results: dict):
    """A DataFrame: index ``candidate`` (one row per candidate of ``case``), its ``confidence``, then one column per
    ``{label: ImageResult}`` saying what removed it (``kept`` for the regions fused into the map; ``not prompted`` for
    candidates of an expert prompt that a variant without P^L never asks for)."""
    from ..frames import table

    per_candidate = {lab: candidate_regions(case, res) for lab, res in results.items()}

    def fate(reg) -> str:
        if reg is None:
            return "not prompted"
        return "kept" if reg.removed_by is None else f"removed: {reg.removed_by}"

    rows = [[name, float(case.stages.detections.scores[i]), *(fate(per_candidate[lab].get(i)) for lab in results)]
            for i, name in enumerate(case.names)]
    return table(rows, ["candidate", "confidence", *results], index="candidate")


def rescoring_table(case: KnownCase, result):
    """A DataFrame of the P^S rescoring in ``result`` on ``case``: index ``candidate``, its confidence c, the mean
    saliency s in its mask and the rescored c' = c·exp(γ s), for the candidates ``result`` scored."""
    from ..frames import table

    rows = [[case.names[i], r.confidence, r.saliency, r.score] for i, r in candidate_regions(case, result).items()]
    return table(rows, ["candidate", "confidence c", "mean saliency", "c' = c·exp(γ s)"], index="candidate",
                 formats={"mean saliency": ".3f", "c' = c·exp(γ s)": ".3f"})
