"""Scale-out: score a category's images on a Ray cluster, one actor per device, metrics computed in the driver.

:class:`RayScorer` is a scorer for :func:`saa_lib.engine.evaluate.evaluate` (``scorer=``): it starts a local Ray instance
(the machine's CPUs, no dashboard, no usage reporting) or joins the cluster at ``address``, then starts one actor per
GPU of the cluster (or, without GPUs, a few CPU actors). Every actor builds its own pipeline from one
:class:`PipelineSpec`, the same recipe the single-process command line uses, so seeded tiny/random models are the same
tensors everywhere. The images of a category go out in small chunks (two in flight per actor); the per-image results
come back, are put back in the images' order, and :func:`saa_lib.engine.evaluate.collect_runs` computes the metrics in the
driver exactly as in a single-process run.

Identical numbers: on CPU, torch's kernels may round differently with another number of threads (GroundingDINO's box
confidences moved by about 2e-6 between 1 and 2 threads), so each CPU actor runs with a fixed thread count, its CPUs
(``cpus_per_actor``); a single-process run with that many threads (``torch.set_num_threads``) gives bit-identical maps
and metrics. On GPUs the same model on the same kind of GPU gives the same numbers.

Ray (pinned in requirements.txt; the package's ``ray`` extra) is imported only when a :class:`RayScorer` is made;
importing this module touches neither Ray nor the network. On a cluster of several machines every node needs saa_lib
installed, the data set at the same path (a shared file system) and the weights in its cache.
"""
from __future__ import annotations

import logging
import math
import os
import pickle
from dataclasses import dataclass, field, replace
from pathlib import Path

#: environment variables an actor of a local Ray instance takes over from the driver (cache and offline settings)
FORWARDED_ENV = ("SAA_HOME", "XDG_CACHE_HOME", "TORCH_HOME", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
#: threads (and Ray CPUs) of one CPU actor when the number of actors is not given
CPU_THREADS_PER_ACTOR = 8
#: chunks of images waiting in or running on each actor
IN_FLIGHT_PER_ACTOR = 2
#: at most this many images per chunk
MAX_CHUNK = 16


class RayNotInstalledError(ImportError):
    """``--ray`` was asked for but Ray cannot be imported."""


def import_ray():
    """The ``ray`` module, or :class:`RayNotInstalledError` saying how to install it."""
    try:
        import ray
    except ImportError as err:
        raise RayNotInstalledError(
            f"--ray needs Ray, which cannot be imported here ({err}). requirements.txt pins it (make setup installs "
            "it); after a bare pip install of the package: pip install 'saa-workbook[ray]'. Or run without --ray.") \
            from err
    return ray


@dataclass
class PipelineSpec:
    """How to build an :class:`saa_lib.pipeline.SAAPipeline`: the arguments of :func:`saa_lib.weights.zoo.load_models` (or
    :func:`saa_lib.weights.zoo.load_saliency_only` when ``need_detector`` is false), the stage cache and mixed precision.

    Picklable: a Ray actor rebuilds the very pipeline the driver would. ``kind``: official | paths | tiny | random;
    ``device``: auto | cpu | cuda | cuda:N; ``autocast``: none | bf16 | fp16 (CUDA only; ignored on CPU, as on the
    command line); ``cache_dir`` None: ``$SAA_HOME/cache``.
    """

    kind: str = "official"
    checkpoints: dict | None = None
    sam_variant: str = "vit_h"
    saliency_backbone: str = "wide_resnet50_2"
    seed: int = 0
    download: bool = True
    device: str = "auto"
    need_detector: bool = True
    autocast: str = "none"
    cache_dir: str | None = None
    cache: bool = True

    def build(self, device: str | None = None):
        """The pipeline, on ``device`` (default: this spec's)."""
        from ..cache import StageCache
        from ..pipeline import SAAPipeline
        from ..utils import AUTOCAST_DTYPES, resolve_device
        from ..weights.zoo import load_models, load_saliency_only

        dev = resolve_device(device or self.device)
        if self.need_detector:
            models = load_models(self.kind, device=dev, sam_variant=self.sam_variant,
                                 saliency_backbone=self.saliency_backbone, checkpoints=self.checkpoints,
                                 seed=self.seed, download=self.download)
        else:
            models = load_saliency_only(self.saliency_backbone, kind=self.kind, device=dev, seed=self.seed,
                                        download=self.download)
        dtype = AUTOCAST_DTYPES[self.autocast]
        cache = StageCache(self.cache_dir, enabled=self.cache)
        return SAAPipeline(models, cache, autocast=dtype if dev.type == "cuda" else None)

    def absolute(self) -> "PipelineSpec":
        """The same spec with its file paths made absolute (a Ray worker may run in another directory)."""
        ck = None if self.checkpoints is None else {k: str(Path(v).expanduser().absolute())
                                                    for k, v in self.checkpoints.items()}
        cache_dir = None if self.cache_dir is None else str(Path(self.cache_dir).expanduser().absolute())
        return replace(self, checkpoints=ck, cache_dir=cache_dir)


class ScoringWorker:
    """The body of one Ray actor: a pipeline built once, then chunks of images scored with it."""

    def __init__(self, spec: PipelineSpec, device: str, threads: int, num_workers: int | None, env: dict):
        os.environ.update(env)
        import torch

        torch.set_num_threads(int(threads))
        from .evaluate import LocalScorer

        self.scorer = LocalScorer(spec.build(device), num_workers=num_workers)

    def info(self) -> dict:
        import torch

        models = self.scorer.pipeline.models
        return {"describe": models.describe(), "meaningful": models.meaningful, "identity": models.identity,
                "device": str(models.device), "torch_threads": torch.get_num_threads(), "pid": os.getpid(),
                "num_workers": self.scorer.num_workers}

    def score(self, samples: list, prompts, configs: list) -> bytes:
        """Pickled ``list[ScoredImage]`` (unpickled in the driver into ordinary, writable arrays)."""
        out = self.scorer.score_images(samples, prompts, configs, progress=False)
        return pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)

    def cache_stats(self) -> dict:
        return self.scorer.cache_stats()


def _absolute_sample(s):
    mask = None if s.mask_path is None else Path(s.mask_path).absolute()
    return replace(s, image_path=Path(s.image_path).absolute(), mask_path=mask)


def _merge_counts(parts: list[dict]) -> dict:
    out: dict = {}
    for p in parts:
        for k, v in p.items():
            out[k] = out.get(k, 0) + v
    return out


@dataclass
class RayScorer:
    """Scores images on a Ray cluster; a scorer for :func:`saa_lib.engine.evaluate.evaluate` (see the module docstring).

    ``address``: None or ``"local"`` starts a local Ray instance unless Ray is already initialised in this process
    (then that one is used); anything else (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``) joins that cluster.
    ``actors``: how many (default: one per GPU of the cluster when the spec's device is auto or cuda and there are
    GPUs; else ``CPUs // 8``, at least 1). ``cpus_per_actor``: Ray CPUs and torch threads of each actor (default: the
    cluster's CPUs shared out, at most one node's; 1 to 4 for GPU actors). ``num_workers``: image-loading processes
    inside each actor (None: 2 on CUDA, 0 on CPU). ``init_kwargs``: more arguments for ``ray.init`` when a local
    instance is started. Use as a context manager, or call :meth:`close`.
    """

    spec: PipelineSpec
    address: str | None = None
    actors: int | None = None
    cpus_per_actor: int | None = None
    num_workers: int | None = None
    init_kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        ray = import_ray()
        self._started = False
        self._actors: list = []
        local = self.address in (None, "", "local")
        if not ray.is_initialized():
            if local:
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING,
                         **{"num_cpus": None, **self.init_kwargs})
            else:
                ray.init(address=self.address, logging_level=logging.WARNING, **self.init_kwargs)
            self._started = True
        try:
            self._start_actors(ray, local)
        except BaseException:
            self.close()
            raise

    @property
    def handles(self) -> list:
        """The Ray actors scoring the images."""
        return list(self._actors)

    def _start_actors(self, ray, local: bool) -> None:
        res = ray.cluster_resources()
        cpus, gpus = int(res.get("CPU", 0)), int(res.get("GPU", 0))
        node_cpus = max((int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")), default=cpus)
        dev = self.spec.device
        use_gpu = dev.startswith("cuda") or (dev == "auto" and gpus > 0)
        if self.actors is not None and self.actors < 1:
            raise ValueError(f"--ray-actors must be at least 1, got {self.actors}")
        if use_gpu:
            if gpus == 0:
                raise ValueError(f"--device {dev} with --ray: the Ray cluster has no GPU")
            n = self.actors or gpus
            if n > gpus:
                raise ValueError(f"--ray-actors {n}: the Ray cluster has {gpus} GPU(s), one actor per GPU")
            per = self.cpus_per_actor or max(1, min(4, cpus // n, node_cpus))
        else:
            n = self.actors or max(1, cpus // CPU_THREADS_PER_ACTOR)
            per = self.cpus_per_actor or max(1, min(cpus // n, node_cpus))
            if n * per > cpus:
                raise ValueError(f"{n} CPU actor(s) of {per} CPU(s) each need {n * per} CPUs; the Ray cluster has "
                                 f"{cpus}. Ask for fewer with --ray-actors")
        if local:
            self._fetch_weights()
        names = FORWARDED_ENV if local else ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
        env = {k: os.environ[k] for k in names if k in os.environ}
        spec = self.spec.absolute()
        remote = ray.remote(ScoringWorker).options(num_cpus=per, num_gpus=1 if use_gpu else 0)
        self._actors = [remote.remote(spec, "cuda" if use_gpu else "cpu", per, self.num_workers, env)
                        for _ in range(n)]
        self._info = ray.get([a.info.remote() for a in self._actors])  # the models are built by now
        identities = {i["identity"] for i in self._info}
        if len(identities) != 1:
            raise RuntimeError(f"the Ray actors built different models: {sorted(identities)}")
        self._execution = {"mode": "ray", "address": self.address or "local", "actors": n,
                           "device": "cuda" if use_gpu else "cpu", "cpus_per_actor": per,
                           "torch_threads": self._info[0]["torch_threads"],
                           "num_workers": self._info[0]["num_workers"], "cluster_cpus": cpus, "cluster_gpus": gpus}

    def _fetch_weights(self) -> None:
        """Download missing official weights once, here, rather than in every actor at the same time."""
        if self.spec.kind != "official":
            return
        from ..weights.zoo import missing_weights, require_weights, weights_for

        names = weights_for(self.spec.sam_variant, self.spec.saliency_backbone)
        if not self.spec.need_detector:
            names = [n for n in names if n == self.spec.saliency_backbone]
        absent = [n for n, _, _ in missing_weights(names)]
        if absent:
            require_weights(absent, download=self.spec.download)

    # ----- the scorer interface ------------------------------------------------------------------------------------
    def score_images(self, samples, prompts, configs, progress: bool = True, desc: str = "") -> list:
        """``list[ScoredImage]`` of ``samples``, in their order, computed by the actors."""
        from tqdm.auto import tqdm

        ray = import_ray()
        samples = [_absolute_sample(s) for s in samples]
        if not samples:
            return []
        size = max(1, min(MAX_CHUNK, math.ceil(len(samples) / (len(self._actors) * 4))))
        chunks = [samples[i:i + size] for i in range(0, len(samples), size)]
        prompts_ref, configs_ref = ray.put(prompts), ray.put(list(configs))
        todo = iter(range(len(chunks)))
        parts: list = [None] * len(chunks)
        pending: dict = {}

        def submit(actor) -> None:
            i = next(todo, None)
            if i is not None:
                pending[actor.score.remote(chunks[i], prompts_ref, configs_ref)] = (i, actor)

        with tqdm(total=len(samples), desc=desc or prompts.category, disable=not progress, leave=False,
                  unit="img") as bar:
            for _ in range(IN_FLIGHT_PER_ACTOR):
                for actor in self._actors:
                    submit(actor)
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                i, actor = pending.pop(ref)
                parts[i] = pickle.loads(ray.get(ref))
                bar.update(len(chunks[i]))
                submit(actor)
        return [x for part in parts for x in part]

    def describe(self) -> str:
        return self._info[0]["describe"]

    @property
    def meaningful(self) -> bool:
        return bool(self._info[0]["meaningful"])

    def cache_stats(self) -> dict:
        """Hits and misses per stage, summed over the actors."""
        ray = import_ray()
        stats = ray.get([a.cache_stats.remote() for a in self._actors])
        return {"hits": _merge_counts([s["hits"] for s in stats]),
                "misses": _merge_counts([s["misses"] for s in stats])}

    def execution(self) -> dict:
        return dict(self._execution)

    def close(self) -> None:
        """End the actors, and the Ray instance if this scorer started it."""
        ray = import_ray()
        for a in self._actors:
            ray.kill(a)
        self._actors = []
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False

    def __enter__(self) -> "RayScorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
