"""P^S against other images of the category: batch zero-shot (the other test images) and few-shot (normal reference
images). An extension of SAA+, kept apart from its core: ``SaliencyConfig.peers`` holds its :class:`PeerConfig`, and a
:class:`PeerSaliency` per category holds its images and their features::

    config = with_peers(variant_config("saa_plus"), source="batch")
    peers = PeerSaliency(models, cache, category="screw", batch=images)
    result = pipe.run(image, prompts, config, peers=peers)

``config`` (importable without torch): the settings. ``sources``: the maths (nearest-patch distances, mutual
scoring, views). ``store``: where the kept features live. ``saliency``: :class:`PeerSaliency`. Every source's P^S
map alone, measured per category: :mod:`saa_lib.engine.saliency_sources`.
"""
from .config import PeerConfig, with_peers

__all__ = ["PeerConfig", "PeerSaliency", "with_peers"]


def __getattr__(name: str):
    if name == "PeerSaliency":  # imported on first use: the package itself stays importable without torch
        from .saliency import PeerSaliency

        return PeerSaliency
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
