"""Candle bucket arithmetic (UTC boundaries, 4h/1d alignment) and the worker's candle
cache against a real Redis (store/candles.py)."""

from datetime import UTC, datetime

import redis

from schemas.market_data import INTERVALS
from store import candles, keys


def ms(*args) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_buckets_start_on_utc_boundaries():
    t = ms(2026, 3, 14, 15, 9, 26) + 535
    want = {"1m": ms(2026, 3, 14, 15, 9), "5m": ms(2026, 3, 14, 15, 5),
            "15m": ms(2026, 3, 14, 15, 0), "1h": ms(2026, 3, 14, 15),
            "4h": ms(2026, 3, 14, 12), "1d": ms(2026, 3, 14)}
    assert {n: candles.bucket_start(t, length) for n, length in INTERVALS.items()} == want


def test_4h_and_1d_align_to_midnight_utc():
    for day in ((2024, 2, 29), (2026, 12, 31), (1970, 1, 1)):
        midnight = ms(*day)
        assert candles.bucket_start(midnight, INTERVALS["1d"]) == midnight
        assert candles.bucket_start(midnight - 1, INTERVALS["1d"]) == midnight - 86_400_000
        for hour in range(24):
            t = midnight + hour * 3_600_000 + 59_999
            assert candles.bucket_start(t, INTERVALS["4h"]) == midnight + hour // 4 * 14_400_000


def test_exact_boundary_belongs_to_the_new_bucket():
    edge = ms(2026, 1, 1, 4)
    assert candles.bucket_start(edge, INTERVALS["4h"]) == edge
    assert candles.bucket_start(edge - 1, INTERVALS["4h"]) == ms(2026, 1, 1, 0)


def test_merge_keeps_open_moves_close_sums_volume():
    c = candles.merge(None, 60_000, 100, 5)
    c = candles.merge(c, 60_000, 120, 2)
    c = candles.merge(c, 60_000, 90, 1)
    assert c == [60_000, 100, 120, 90, 90, 8, 100 * 5 + 120 * 2 + 90, 3]
    assert candles.decode(candles.encode(c)) == c


def test_cache_writes_whole_candles_and_reads_an_older_bucket_once(redis_server, redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    symbol = "BTC-USD"
    t0 = ms(2026, 5, 1, 3, 59, 30)
    cache = candles.CandleCache(r, symbol, book=object())
    rows = cache.update([(t0, 100, 1), (t0 + 40_000, 105, 2)])  # crosses 1m and 4h edges

    def apply(rows):
        for key, start, member in rows:
            r.zremrangebyscore(key, start, start)
            r.zadd(key, {member: int(start)})

    apply(rows)
    # The same cache, a later batch: every trade counts, the close moves to the last one.
    apply(cache.update([(t0 + 41_000, 107, 1), (t0 + 42_000, 104, 1)]))
    apply(cache.update([(t0 + 43_000, 103, 1)]))
    assert r.zrange(keys.candles(symbol, "1m"), -1, -1) == [
        f"{ms(2026, 5, 1, 4, 0)}:105:107:103:103:5:{210 + 107 + 104 + 103}:4"]
    for key, start, _ in rows:  # back to the first batch only
        r.zremrangebyscore(key, start, start)
    apply(rows)
    one_min = r.zrange(keys.candles(symbol, "1m"), 0, -1)
    assert one_min == [f"{ms(2026, 5, 1, 3, 59)}:100:100:100:100:1:100:1",
                       f"{ms(2026, 5, 1, 4, 0)}:105:105:105:105:2:210:1"]
    assert r.zrange(keys.candles(symbol, "1d"), 0, -1) == [
        f"{ms(2026, 5, 1)}:100:105:100:105:3:310:2"]
    # A new cache (the worker rebuilt its book) starts from what is stored.
    cache = candles.CandleCache(r, symbol, book=object())
    apply(cache.update([(t0 + 50_000, 99, 1), (t0 - 60_000, 200, 1)]))  # clock went back
    assert r.zrange(keys.candles(symbol, "1m"), 0, -1) == [
        f"{ms(2026, 5, 1, 3, 58)}:200:200:200:200:1:200:1",
        f"{ms(2026, 5, 1, 3, 59)}:100:100:100:100:1:100:1",
        f"{ms(2026, 5, 1, 4, 0)}:105:105:99:99:3:309:2"]
    assert r.zrange(keys.candles(symbol, "1d"), 0, -1) == [
        f"{ms(2026, 5, 1)}:100:200:99:200:5:609:4"]
    built = candles.from_trades([(t0, 100, 1), (t0 + 40_000, 105, 2), (t0 + 50_000, 99, 1),
                                 (t0 - 60_000, 200, 1)], INTERVALS["1m"])
    assert [candles.encode(c) for _, c in sorted(built.items())] == r.zrange(
        keys.candles(symbol, "1m"), 0, -1)
    r.close()


def test_cache_in_random_batches_equals_the_candles_of_all_trades(redis_server, redis_url):
    import random

    r = redis.Redis.from_url(redis_url, decode_responses=True)
    rnd = random.Random(5)
    symbol, ts, trades = "ETH-USD", ms(2026, 7, 1, 23, 50), []
    cache = candles.CandleCache(r, symbol, book=object())
    for _ in range(60):
        batch = []
        for _ in range(rnd.randint(1, 30)):
            ts += rnd.choice((0, 1, 500, 20_000, 90_000, -70_000))  # now and then back
            batch.append((ts, rnd.randint(90, 110), rnd.randint(1, 9)))
        trades += batch
        for key, start, member in cache.update(batch):
            r.zremrangebyscore(key, start, start)
            r.zadd(key, {member: int(start)})
        if rnd.random() < 0.2:  # the worker rebuilt its book: a fresh cache
            cache = candles.CandleCache(r, symbol, book=object())
    for name, length in INTERVALS.items():
        want = [candles.encode(c) for _, c in sorted(candles.from_trades(trades, length).items())]
        assert r.zrange(keys.candles(symbol, name), 0, -1) == want, name
    r.close()
