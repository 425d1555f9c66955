import numpy as np

from saa_lib.cache import StageCache


def test_cache_stores_and_reuses(tmp_path):
    cache = StageCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(5)}

    a = cache.get("stage", {"image": "abc", "t": 0.1}, compute)
    b = cache.get("stage", {"t": 0.1, "image": "abc"}, compute)  # key order does not matter
    np.testing.assert_array_equal(a["x"], b["x"])
    assert len(calls) == 1 and cache.stats() == {"hits": {"stage": 1}, "misses": {"stage": 1}}
    cache.get("stage", {"image": "abc", "t": 0.2}, compute)  # a changed setting is a new entry
    assert len(calls) == 2


def test_corrupt_entry_is_recomputed_not_trusted(tmp_path):
    cache = StageCache(tmp_path)
    parts = {"image": "abc"}
    cache.get("s", parts, lambda: {"x": np.ones(3)})
    path = cache.path("s", cache.key("s", parts))
    path.write_bytes(path.read_bytes()[:40])  # truncated file
    out = cache.get("s", parts, lambda: {"x": np.full(3, 7.0)})
    np.testing.assert_array_equal(out["x"], [7, 7, 7])
    assert cache.load("s", cache.key("s", parts))["x"][0] == 7


def test_entry_under_a_wrong_name_is_rejected(tmp_path):
    cache = StageCache(tmp_path)
    k1, k2 = cache.key("s", {"a": 1}), cache.key("s", {"a": 2})
    cache.save("s", k1, {"x": np.zeros(1)})
    cache.path("s", k2).parent.mkdir(parents=True, exist_ok=True)
    cache.path("s", k1).rename(cache.path("s", k2))
    assert cache.load("s", k2) is None and not cache.path("s", k2).exists()


def test_disabled_cache_always_computes(tmp_path):
    cache = StageCache(tmp_path, enabled=False)
    n = []
    for _ in range(2):
        cache.get("s", {}, lambda: n.append(1) or {"x": np.zeros(1)})
    assert len(n) == 2 and not any(tmp_path.iterdir())


def test_compressed_entries_read_back_and_are_smaller(tmp_path):
    import numpy as np

    from saa_lib.cache import StageCache

    cache = StageCache(tmp_path)
    bits = np.zeros((20, 512, 64), np.uint8)
    bits[:, 100:200, 10:20] = 255
    plain = cache.get("refiner", {"k": 1}, lambda: {"masks": bits})
    packed = cache.get("refiner", {"k": 2}, lambda: {"masks": bits}, compress=True)
    again = StageCache(tmp_path).get("refiner", {"k": 2}, lambda: {"masks": bits * 0})
    np.testing.assert_array_equal(again["masks"], bits)
    np.testing.assert_array_equal(plain["masks"], packed["masks"])
    size = {k: cache.path("refiner", cache.key("refiner", {"k": k})).stat().st_size for k in (1, 2)}
    assert size[2] * 20 < size[1]
