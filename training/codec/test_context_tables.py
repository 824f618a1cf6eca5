"""Unit tests of the context-table fit (numpy and the reference coder only, no data):
python3 -m pytest training/codec -q -p no:cacheprovider"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import context_tables as ct  # noqa: E402
from reference.latents import _TableSelector, decode_latents, encode_latents  # noqa: E402
from reference.tables import TableSet  # noqa: E402


def sparse_latents(rng, n, channels, height, width):
    """Codec-like latents: mostly zero, non-zero values clustered in 2x2 blocks of 'detail'."""
    detail = rng.random((n, 1, (height + 1) // 2, (width + 1) // 2)) < 0.3
    detail = detail.repeat(2, 2).repeat(2, 3)[:, :, :height, :width]
    scale = rng.uniform(0.5, 2.0, (1, channels, 1, 1)) * np.where(detail, 1.0, 0.05)
    y = np.round(rng.laplace(0, 1, (n, channels, height, width)) * scale).astype(np.int16)
    y[:, -1] = 0  # an all-zero channel, skipped by the coder
    return y


def test_vectorised_contexts_are_the_coders_contexts():
    rng = np.random.default_rng(1)
    y = sparse_latents(rng, 1, 6, 5, 7)
    y[0, 2, 1, 3] = -300
    edges, cap = (1, 2, 4), 3
    k_count = (len(edges) + 1) * (cap + 1)
    ts = TableSet.from_bytes(ct.fit([("t", y)], 6, list(edges), cap, 4, 12).to_bytes())
    selector = _TableSelector(ts, (6, 5, 7))
    flat = [int(v) for v in y[0].ravel()]
    k = ct.contexts(y.astype(np.int32), edges, cap)[0]
    for c in range(6):
        for i in range(35):
            assert selector.table(flat, c, i) == ts.context.table_map[c * k_count + k[c].ravel()[i]]
        selector.end_channel(flat, c)


def test_fitted_tables_round_trip_and_their_size_estimate_is_the_coded_size():
    rng = np.random.default_rng(2)
    train = sparse_latents(rng, 40, 8, 6, 10)
    val = sparse_latents(rng, 3, 8, 6, 10)
    val[0, 1, 2, 2] = 5000  # an escape
    ts = ct.fit([("train", train)], 8, [1, 2, 4], 3, 16, 12)
    assert ts.context is not None and 1 <= len(ts.tables) <= 16
    assert TableSet.from_bytes(ts.to_bytes()) == ts
    coded_bits = 0
    for y in val:
        flat = [int(v) for v in y.ravel()]
        body = encode_latents(flat, (8, 6, 10), ts)
        assert body[0] == 2
        assert list(decode_latents(body, (8, 6, 10), ts)) == flat
        coded_bits += 8 * (len(body) - 2 - 1 - 4 * 4)  # words only: no coder, lanes, skip map, states
    ideal, values = ct.bits_of([("val", val)], ts)
    assert values == int((val != 0).reshape(3, 8, -1).any(-1).sum()) * 60
    # rANS codes within a few words per lane of the ideal size.
    assert ideal <= coded_bits + 3 * 4 * 32
    assert coded_bits <= ideal * 1.01 + 3 * 4 * 32


def test_context_tables_beat_one_table_per_channel_on_clustered_latents():
    rng = np.random.default_rng(3)
    train = sparse_latents(rng, 60, 8, 6, 10)
    val = sparse_latents(rng, 10, 8, 6, 10)
    per_channel = ct.fit([("train", train)], 8, [], 0, 8, 12)  # one context: a table per channel at most
    context = ct.fit([("train", train)], 8, [1, 2, 4], 3, 32, 12)
    assert ct.bits_of([("val", val)], context)[0] < 0.8 * ct.bits_of([("val", val)], per_channel)[0]
