"""``icechunk._core.cache.ObjectCache``: a byte-bounded LRU of immutable decoded objects."""

from __future__ import annotations

from icechunk._core.cache import ObjectCache


def test_get_returns_what_was_put_under_kind_and_key() -> None:
    cache = ObjectCache(max_bytes=1000)
    cache.put("snapshot", b"k", "snap", 10)
    assert cache.get("snapshot", b"k") == "snap"
    assert cache.get("manifest", b"k") is None  # the kind is part of the key
    assert cache.get("snapshot", b"other") is None


def test_least_recently_used_entry_is_evicted_first() -> None:
    cache = ObjectCache(max_bytes=100)
    cache.put("m", b"a", "A", 25)
    cache.put("m", b"b", "B", 25)
    cache.put("m", b"c", "C", 25)
    assert cache.get("m", b"a") == "A"  # a is now the most recent
    cache.put("m", b"d", "D", 25)
    cache.put("m", b"e", "E", 25)  # 125 bytes: one entry goes, the least recent (b)
    assert cache.get("m", b"b") is None
    assert [cache.get("m", k) for k in (b"a", b"c", b"d", b"e")] == ["A", "C", "D", "E"]


def test_replacing_a_key_counts_its_size_once() -> None:
    cache = ObjectCache(max_bytes=100)
    cache.put("m", b"a", "A1", 20)
    cache.put("m", b"a", "A2", 20)
    cache.put("m", b"b", "B", 20)
    cache.put("m", b"c", "C", 20)
    cache.put("m", b"d", "D", 20)
    cache.put("m", b"e", "E", 20)  # 100 bytes if a's old size was released: nothing evicted
    assert cache.get("m", b"a") == "A2"
    assert cache.get("m", b"e") == "E"


def test_objects_over_a_quarter_of_the_budget_are_not_cached() -> None:
    cache = ObjectCache(max_bytes=100)
    cache.put("m", b"small", "s", 10)
    cache.put("m", b"big", "b", 26)
    assert cache.get("m", b"big") is None
    assert cache.get("m", b"small") == "s"  # and nothing was evicted to make room
    cache.put("m", b"quarter", "q", 25)
    assert cache.get("m", b"quarter") == "q"


def test_clear_empties_the_cache_and_its_byte_count() -> None:
    cache = ObjectCache(max_bytes=100)
    for i in range(4):
        cache.put("m", bytes([i]), i, 25)
    cache.clear()
    assert all(cache.get("m", bytes([i])) is None for i in range(4))
    for i in range(4):  # 100 bytes fit again: the count was reset
        cache.put("m", bytes([10 + i]), i, 25)
    assert all(cache.get("m", bytes([10 + i])) == i for i in range(4))
