"""Generator: GroundingDINO turns text prompts into candidate boxes with confidences.

Two input pre-processings (``Generator.detect(..., official_input=...)``): the official transform (PIL bilinear resize
of the uint8 RGB image to shorter side 800 / longer side <= 1333 with the transform's own integer size arithmetic, then
ToTensor + ImageNet normalisation: ``groundingdino.datasets.transforms``), and a float resize on the model's device
(antialiased, rounded sizes; faster on a GPU). One forward per prompt entry, as the official code does (an entry's
caption may hold several phrases ``"a. b. c."``);
on CUDA, entries of one image whose captions have the same token length run as one batch (padding would change the
outputs; on the CPU one at a time, see ``Generator.max_batch``). The image backbone (Swin) runs once per image and its
features are shared by every caption. ``single_caption=True`` joins every entry into one caption (one forward,
faster; each box is then attributed to the entry whose tokens it matches best).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .models.common import IMAGENET_MEAN, IMAGENET_STD
from .records import Detections
from .utils import split_on_oom


def normalize_caption(caption: str) -> str:
    """Lower case, single spaces, ending with ``.`` (GroundingDINO's caption convention)."""
    caption = " ".join(caption.lower().strip().split())
    return caption if caption.endswith(".") else caption + "."


def resize_for_gdino(image: np.ndarray, min_size: int = 800, max_size: int = 1333, device=None) -> torch.Tensor:
    """(3, h, w) normalised tensor: shorter side ``min_size``, longer side at most ``max_size`` (GDINO's transform).

    ``image``: (H, W, 3) uint8 RGB. ``device``: where to resize (the uint8 pixels are copied there first, without
    blocking when they sit in pinned memory); the same operations run on the CPU.
    """
    h, w = image.shape[:2]
    scale = min_size / min(h, w)
    if max(h, w) * scale > max_size:
        scale = max_size / max(h, w)
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device, non_blocking=True)
    x = x.permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)[0]
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(3, 1, 1)
    return (x - mean) / torch.tensor(IMAGENET_STD, device=x.device).view(3, 1, 1)


def official_gdino_input(image: np.ndarray, min_size: int = 800, max_size: int = 1333) -> torch.Tensor:
    """(3, h, w) tensor exactly as the official transform makes it: ``RandomResize([min_size], max_size)`` (PIL
    bilinear on the uint8 image, the transform's own integer size arithmetic), ``ToTensor``, ImageNet ``Normalize``.
    ``image``: (H, W, 3) uint8 RGB."""
    import groundingdino.datasets.transforms as T
    from PIL import Image

    transform = T.Compose([T.RandomResize([min_size], max_size=max_size), T.ToTensor(),
                           T.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD))])
    return transform(Image.fromarray(np.ascontiguousarray(image)), None)[0]


@contextmanager
def shared_image_features(model: torch.nn.Module):
    """While inside, ``model.backbone`` (GroundingDINO's Swin + position encoding) runs once per distinct image: on a
    batch that is one image under several captions it runs on the first copy and repeats the features, and later
    forwards of the same image (other caption groups) reuse them. Parameters and state dict are untouched; the
    backbone's own ``forward`` is restored on exit."""
    from groundingdino.util.misc import NestedTensor

    joiner = model.backbone
    own = joiner.__dict__.get("forward")
    inner = joiner.forward
    memo: dict = {}

    def forward(samples):
        first, n = samples.tensors[:1], len(samples.tensors)
        if not (memo and memo["image"].shape == first.shape and torch.equal(memo["image"], first)):
            memo.update(image=first, out=inner(NestedTensor(first, samples.mask[:1])))
        feats, poss = memo["out"]

        def rep(t):
            return t.expand(n, *t.shape[1:]).contiguous()

        return [NestedTensor(rep(f.tensors), rep(f.mask)) for f in feats], [rep(p) for p in poss]

    joiner.forward = forward
    try:
        yield
    finally:
        if own is None:
            del joiner.forward
        else:
            joiner.forward = own


@dataclass
class Generator:
    """GroundingDINO wrapper: image + captions -> :class:`Detections`.

    ``model`` is a ``groundingdino`` GroundingDINO module (with ``.tokenizer``); ``floor`` is the confidence a box needs
    to be kept at all (the box threshold is applied later, so changing it re-runs nothing).
    """

    model: torch.nn.Module
    min_size: int = 800
    max_size: int = 1333
    floor: float = 0.05
    autocast: torch.dtype | None = None
    #: captions per forward; None: every caption of one token length at once on CUDA, one at a time on the CPU (where a
    #: padded batch does not run faster than single forwards; docs/benchmarks.md). Either way the image backbone runs
    #: once per image.
    max_batch: int | None = None
    _tokens: dict = field(default_factory=dict, repr=False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def tokens(self, caption: str) -> list[str]:
        """Tokens of a caption as the model sees them (``[CLS] ... [SEP]``)."""
        if caption not in self._tokens:
            ids = self.model.tokenizer(caption)["input_ids"]
            self._tokens[caption] = self.model.tokenizer.convert_ids_to_tokens(ids)
        return self._tokens[caption]

    @torch.no_grad()
    def _forward(self, captions: list[str], x: torch.Tensor):
        batch = x.unsqueeze(0).expand(len(captions), -1, -1, -1).contiguous()
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            out = self.model(batch, captions=list(captions))
        return out["pred_logits"].float().sigmoid().cpu(), out["pred_boxes"].float().cpu()

    def detect(self, image: np.ndarray, captions: list[str], single_caption: bool = False,
               official_input: bool = False) -> Detections:
        """Boxes for every caption (one batched forward, or one joined caption). ``image``: (H, W, 3) uint8 RGB.
        ``official_input``: the official transform (:func:`official_gdino_input`) instead of the device resize."""
        captions = [normalize_caption(c) for c in captions]
        hw = tuple(image.shape[:2])
        tokens = [self.tokens(c) for c in captions]
        if not captions:
            return Detections.empty([], [], hw)
        x = (official_gdino_input(image, self.min_size, self.max_size).to(self.device) if official_input
             else resize_for_gdino(image, self.min_size, self.max_size, self.device))
        if single_caption and len(captions) > 1:
            return self._detect_joined(x, captions, tokens, hw)
        # Only captions of equal token length share a forward: GroundingDINO's outputs change with text padding (box
        # confidences move), so a padded batch would not reproduce one forward per entry.
        logits, boxes = [None] * len(captions), [None] * len(captions)
        limit = self.max_batch or (len(captions) if self.device.type == "cuda" else 1)
        groups = [[i for i, t in enumerate(tokens) if len(t) == n] for n in sorted({len(t) for t in tokens})]
        groups = [g[k:k + limit] for g in groups for k in range(0, len(g), limit)]
        with shared_image_features(self.model):  # one Swin pass for all caption groups
            outs = [split_on_oom(self._forward, [captions[i] for i in group], x) for group in groups]
        for group, parts in zip(groups, outs):
            for i, lg, bx in zip(group, torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])):
                logits[i], boxes[i] = lg, bx  # (nq, 256) token confidences, (nq, 4) cxcywh in [0, 1]
        dets = []
        for e, toks in enumerate(tokens):
            conf = logits[e][:, : len(toks)]
            dets.append(self._collect(conf, logits[e].max(1).values, boxes[e], [captions[e]], [toks], hw,
                                      np.zeros(len(conf), np.int32)))
        return Detections.concat(dets)

    def _detect_joined(self, x, captions, tokens, hw) -> Detections:
        joined = " ".join(captions)
        jt = self.tokens(joined)
        logits, boxes = self._forward([joined], x)
        # token span of each caption inside the joined one (WordPiece splits on '.', so spans concatenate)
        spans, start = [], 1
        for toks in tokens:
            n = len(toks) - 2  # without [CLS]/[SEP]
            spans.append((start, start + n))
            start += n
        conf = logits[0, :, : len(jt)]
        span_max = torch.stack([conf[:, a:b].max(1).values for a, b in spans], 1)  # (nq, E)
        entry = span_max.argmax(1).numpy().astype(np.int32)
        per_entry = torch.zeros(len(conf), max(len(t) for t in tokens))
        for q, e in enumerate(entry):  # move each query's span confidences into its caption's token positions
            a, b = spans[e]
            per_entry[q, 1: 1 + b - a] = conf[q, a:b]
        return self._collect(per_entry, logits[0].max(1).values, boxes[0], captions, tokens, hw, entry)

    def _collect(self, conf, score, boxes, captions, tokens, hw, entry) -> Detections:
        keep = (score > self.floor).numpy()
        h, w = hw
        b = boxes[keep]
        xyxy = torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1).clamp(0, 1)
        xyxy = (xyxy * torch.tensor([w, h, w, h], dtype=xyxy.dtype)).numpy().astype(np.float32)
        t = max(len(x) for x in tokens)
        tc = np.zeros((int(keep.sum()), t), np.float32)
        c = conf[keep].numpy()
        tc[:, : c.shape[1]] = c
        return Detections(boxes=xyxy, scores=score[keep].numpy().astype(np.float32), entry=entry[keep], token_conf=tc,
                          captions=list(captions), tokens=[list(x) for x in tokens], image_hw=hw,
                          cxcywh=b.numpy().astype(np.float32))
