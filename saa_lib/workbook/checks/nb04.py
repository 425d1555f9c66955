"""Checkers of notebook 04 (saliency prompts P^S)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ...masks import PackedMasks
from ...prompts.saliency import rescore
from ..exercises import agrees_with, close_to, exercise


def _rescore_cases(n_cases: int = 4, size: int = 24):
    """(confidences (M,), masks (M, size, size) bool with no empty mask, saliency (size, size), gain)."""
    rng = np.random.default_rng(4)
    cases = []
    for i in range(n_cases):
        m = int(rng.integers(1, 9))
        masks = rng.random((m, size, size)) < rng.uniform(0.05, 0.6, (m, 1, 1))
        masks[:, i, i] = True  # no empty mask
        cases.append((rng.random(m), masks, rng.random((size, size)) * 0.8, float([1, 3, 0.5, 2][i])))
    return cases


def library_rescore(confidences, masks, saliency, gain):
    """The library's P^S rescoring: confidences * exp(gain * mean saliency inside each mask). (M,)."""
    return rescore(confidences, PackedMasks.from_dense(np.asarray(masks, bool)).means(saliency), gain)


@exercise("04.1", "P^S rescoring from scratch: c'_i = c_i exp(γ · mean saliency inside mask i)",
          "for each mask take the mean of the saliency map over its pixels (saliency[mask].mean()), then multiply the "
          "confidence by exp(γ times that mean)")
def rescoring_from_scratch(rescored) -> bool | str:
    return agrees_with(rescored, library_rescore, _rescore_cases())


@lru_cache(maxsize=1)
def _lite0_features(size: int = 96) -> np.ndarray:
    """(P, D) float32 unit feature vectors of a synthetic washer from the real ``tf_efficientnet_lite0`` (stride-4
    grid of a ``size`` px input: P = (size / 4)², the paper-form features of P^S)."""
    from ...data.synthetic import synthesize
    from ...models.backbone import load_saliency_backbone
    from ...prompts.saliency import pixel_features

    image = synthesize("washer", "hole", seed=0, index=0, size=256).image
    feats = pixel_features(load_saliency_backbone("tf_efficientnet_lite0"), image, size)
    return feats.reshape(-1, feats.shape[-1]).numpy().astype(np.float32)


def _saliency_cases():
    rng = np.random.default_rng(5)
    noise = rng.normal(size=(200, 16)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    real = _lite0_features()
    return [(noise, 10), (real, 400), (real, 20)]


def library_saliency(features, n):
    """The library's paper-form P^S on the grid: :func:`saa_lib.prompts.saliency.knn_saliency` (nearest). (P,)."""
    import torch

    from ...prompts.saliency import knn_saliency

    return knn_saliency(torch.from_numpy(np.ascontiguousarray(features)), n, "nearest").numpy()


@exercise("04.2", "nearest-N saliency from scratch (paper form): each feature's mean cosine distance 1 - cos to its N "
          "nearest other features",
          "the features are unit vectors, so cos = features @ features.T; a pixel is not its own neighbour (leave the "
          "diagonal out); the N nearest are the N largest cosines of a row; average 1 - cos over them")
def saliency_from_scratch(saliency) -> bool | str:
    return agrees_with(saliency, library_saliency, _saliency_cases(), rtol=1e-4, atol=1e-5)


def gain_threshold(case) -> float:
    """The smallest γ for which the known case's hole out-ranks every more confident candidate still alive before
    P^C: max over them of ln(c_p / c_h) / (s_h - s_p); nan when one is at least as salient as the hole."""
    from ...scoring import score

    from ..known_case import candidate_regions

    regions = candidate_regions(case, score(case.stages, case.prompts, case.config.with_(use_confidence=False)))
    hole = regions[case.names.index("true defect")]
    rivals = [r for r in regions.values() if r.removed_by is None and r.confidence > hole.confidence]
    if any(r.saliency >= hole.saliency for r in rivals):
        return float("nan")
    return max([np.log(r.confidence / hole.confidence) / (hole.saliency - r.saliency) for r in rivals] + [0.0])


@exercise("04.3", "the smallest gain γ for which the hole out-ranks every more confident intact patch of the known "
          "case",
          "the hole out-ranks patch p when c_h exp(γ s_h) > c_p exp(γ s_p), i.e. γ > ln(c_p / c_h) / (s_h - s_p); "
          "the smallest γ that beats every patch is the largest of these bounds")
def gain(answer, case) -> bool | str:
    expected = gain_threshold(case)
    verdict = close_to(answer, expected, max(0.05, 0.03 * expected), what="your γ")
    if verdict == "your γ is too low":
        return verdict + ": at that γ a patch still out-ranks the hole; work out the bound of every patch that is "\
            "more confident than the hole"
    return verdict
