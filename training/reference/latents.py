"""Entropy coding of int16 latents into a ``LATN`` body: rANS, 32-bit state, 16-bit words.

Mirrors ``src/entropy/latents.ts`` exactly (see that file for the byte layout):

- state x in [2^16, 2^32); frequencies sum to M = 2^P.
- decode: slot = x mod M; x = f * (x >> P) + slot - cum; if x < 2^16: x = (x << 16) | next word.
- encode (reverse order): if x >= f << (32 - P): emit x & 0xffff; x >>= 16; then
  x = (x // f) << P + x % f + cum.
- symbol k of a channel uses lane k mod N; all-zero channels are flagged in a skip map, not coded.
- values outside a table's range: the escape symbol, then the distance beyond the range
  (d = 2k for high + 1 + k, 2k + 1 for low - 1 - k) as (nibbles - 1) and 4-bit nibbles, least
  significant first, each with uniform frequency 2^(P-4), in the same lane.

Two coders share that byte layout and differ only in byte 0 and in which table codes a symbol:

- coder 1 (v1 table file): channel c is coded with table c.
- coder 2 (v2 table file, ``TableSet.context`` set): y[c, i, j] is coded with the table the context
  section selects from z (nonzero values at (i, j) in earlier channels) and |up| + |left| in the
  same channel (0 outside the tensor); see ``ContextSpec.context``. Escapes use the selected
  table's range and escape symbol.

The encoder picks the coder from the table file's version. The decoder raises ``UnsupportedCoder``
(a ``CorruptPayload``) for a coder byte other than 1 or 2 (the TypeScript side's UNSUPPORTED_CODER),
and ``CorruptPayload`` when the coder byte does not match the table file (coder 1 needs v1 tables,
coder 2 needs v2 tables).
"""
from __future__ import annotations

import struct

from .tables import TableSet

RANS_L = 1 << 16
CODER_RANS32X16 = 1
CODER_RANS32X16_CONTEXT = 2
MAX_LANES = 8
MAX_ESCAPE_NIBBLES = 5


class CorruptPayload(ValueError):
    """The payload does not decode exactly (the TypeScript side's CORRUPT_PAYLOAD)."""


class UnsupportedCoder(CorruptPayload):
    """The body's coder byte is not one this implementation knows (the TypeScript side's UNSUPPORTED_CODER)."""


def coder_for(tables: TableSet) -> int:
    """The coder a table file implies: 2 for a v2 file (context section), 1 for a v1 file."""
    return CODER_RANS32X16 if tables.context is None else CODER_RANS32X16_CONTEXT


class _TableSelector:
    """Which table codes symbol k of channel c, for both coders.

    ``table(values, c, k)`` reads only what the decoder already has: values of earlier channels
    (through the running nonzero counts) and earlier positions of channel c in ``values`` (flat,
    channel-major). Call ``end_channel(values, c)`` once channel c is complete, skipped ones included.
    """

    def __init__(self, tables: TableSet, shape: tuple[int, int, int]):
        channels, height, width = shape
        self.width = width
        self.n = height * width
        self.spec = tables.context
        if self.spec is not None:
            self.nz = [0] * self.n  # z per position: nonzero values in the channels seen so far
            self.contexts = self.spec.contexts
            self.cap = self.spec.cap
            self.map = self.spec.table_map
            # bin(z) * (U + 1) for every z a tensor of this shape can have
            self.zbase = [self.spec.context(z, 0) for z in range(channels)]

    def table(self, values, c: int, k: int) -> int:
        spec = self.spec
        if spec is None:
            return c
        base = c * self.n + k
        up = abs(values[base - self.width]) if k >= self.width else 0
        left = abs(values[base - 1]) if k % self.width else 0
        a = min(up + left, self.cap)
        return self.map[c * self.contexts + self.zbase[self.nz[k]] + a]

    def end_channel(self, values, c: int) -> None:
        if self.spec is None:
            return
        base = c * self.n
        nz = self.nz
        for k in range(self.n):
            if values[base + k]:
                nz[k] += 1


def _nibbles(distance: int) -> list[int]:
    out = [distance & 15]
    distance >>= 4
    while distance:
        out.append(distance & 15)
        distance >>= 4
    return out


def encode_latents(latents, shape: tuple[int, int, int], tables: TableSet, lanes: int = 4) -> bytes:
    """Encode ``latents`` (a flat sequence of ints, channel-major C x H x W) to a LATN body.

    Uses coder 1 with a v1 table set and coder 2 (context-selected tables) with a v2 one.
    """
    channels, height, width = shape
    n = height * width
    if len(latents) != channels * n or tables.channels != channels:
        raise ValueError("latents, shape and tables disagree")
    if not 1 <= lanes <= MAX_LANES:
        raise ValueError("lanes must be 1..8")
    latents = [int(v) for v in latents]
    if any(not -32768 <= v <= 32767 for v in latents):
        raise ValueError("latent values must be int16")
    p = tables.precision
    nibble_freq = 1 << (p - 4)
    words: list[int] = []  # in reverse stream order
    states = [RANS_L] * lanes

    def put(x: int, cum: int, freq: int) -> int:
        if x >= freq << (32 - p):
            words.append(x & 0xFFFF)
            x >>= 16
        return ((x // freq) << p) + (x % freq) + cum

    skip = bytearray((channels + 7) // 8)
    for c in range(channels):
        if all(v == 0 for v in latents[c * n:(c + 1) * n]):
            skip[c >> 3] |= 1 << (c & 7)

    # Forward pass: the table of every coded symbol, from what the decoder will know at that point.
    selector = _TableSelector(tables, shape)
    table_ids: list[list[int] | None] = []
    for c in range(channels):
        if skip[c >> 3] & (1 << (c & 7)):
            table_ids.append(None)
        else:
            table_ids.append([selector.table(latents, c, k) for k in range(n)])
        selector.end_channel(latents, c)

    # rANS is last in, first out: encode in reverse so that the decoder reads symbols in order.
    all_cums = [tables.cums(t) for t in range(len(tables.tables))]
    for c in reversed(range(channels)):
        ids = table_ids[c]
        if ids is None:
            continue
        for k in reversed(range(n)):
            table = tables.tables[ids[k]]
            cums = all_cums[ids[k]]
            lane = k % lanes
            x = states[lane]
            v = latents[c * n + k]
            if table.low <= v <= table.high:
                s = v - table.low
                x = put(x, cums[s], table.freqs[s])
            else:
                d = (v - table.high - 1) * 2 if v > table.high else (table.low - 1 - v) * 2 + 1
                nib = _nibbles(d)
                for q in reversed(nib):
                    x = put(x, q * nibble_freq, nibble_freq)
                x = put(x, (len(nib) - 1) * nibble_freq, nibble_freq)
                x = put(x, cums[table.escape], table.freqs[table.escape])
            states[lane] = x
    out = bytearray([coder_for(tables), lanes]) + skip
    out += struct.pack(f"<{lanes}I", *states)
    out += struct.pack(f"<{len(words)}H", *reversed(words))
    return bytes(out)


def decode_latents(body: bytes, shape: tuple[int, int, int], tables: TableSet) -> list[int]:
    """Decode a LATN body to a flat list of ints (C x H x W).

    Raises ``UnsupportedCoder`` for an unknown coder byte and ``CorruptPayload`` on any other
    mismatch, including a coder byte that does not match the table file's version.
    """
    channels, height, width = shape
    n = height * width
    if tables.channels != channels:
        raise ValueError("tables and shape disagree")
    if len(body) < 2:
        raise CorruptPayload("bad coder or lane count")
    if body[0] not in (CODER_RANS32X16, CODER_RANS32X16_CONTEXT):
        raise UnsupportedCoder(f"entropy coder {body[0]} is not supported (1, 2)")
    if body[0] != coder_for(tables):
        raise CorruptPayload(f"coder {body[0]} needs a v{body[0]} table file, not v{tables.version}")
    if not 1 <= body[1] <= MAX_LANES:
        raise CorruptPayload("bad coder or lane count")
    lanes = body[1]
    mask_bytes = (channels + 7) // 8
    words_at = 2 + mask_bytes + 4 * lanes
    if len(body) < words_at or (len(body) - words_at) % 2:
        raise CorruptPayload("bad length")
    skip = body[2:2 + mask_bytes]
    states = list(struct.unpack_from(f"<{lanes}I", body, 2 + mask_bytes))
    if any(x < RANS_L for x in states):
        raise CorruptPayload("initial state below 2^16")
    words = struct.unpack_from(f"<{(len(body) - words_at) // 2}H", body, words_at)
    pos = 0
    p = tables.precision
    mask = (1 << p) - 1
    out = [0] * (channels * n)

    def get(x: int, cums: list[int], freqs) -> tuple[int, int]:
        nonlocal pos
        slot = x & mask
        s = _find(cums, slot)
        x = freqs[s] * (x >> p) + slot - cums[s]
        if x < RANS_L:
            if pos >= len(words):
                raise CorruptPayload("payload ends early")
            x = (x << 16) | words[pos]
            pos += 1
        return s, x

    nib_cums = [i << (p - 4) for i in range(16)]
    nib_freqs = [1 << (p - 4)] * 16
    all_cums = [tables.cums(t) for t in range(len(tables.tables))]
    selector = _TableSelector(tables, shape)
    for c in range(channels):
        if skip[c >> 3] & (1 << (c & 7)):
            continue  # all zero: contributes nothing to z
        for k in range(n):
            t = selector.table(out, c, k)
            table = tables.tables[t]
            lane = k % lanes
            s, x = get(states[lane], all_cums[t], table.freqs)
            if s == table.escape:
                count, x = get(x, nib_cums, nib_freqs)
                count += 1
                if count > MAX_ESCAPE_NIBBLES:
                    raise CorruptPayload("escape too long")
                d = 0
                for i in range(count):
                    q, x = get(x, nib_cums, nib_freqs)
                    if i == count - 1 and i > 0 and q == 0:
                        raise CorruptPayload("escape not minimal")
                    d |= q << (4 * i)
                v = table.low - 1 - (d >> 1) if d & 1 else table.high + 1 + (d >> 1)
                if not -32768 <= v <= 32767:
                    raise CorruptPayload("escaped value outside int16")
            else:
                v = table.low + s
            out[c * n + k] = v
            states[lane] = x
        selector.end_channel(out, c)
    if any(x != RANS_L for x in states) or pos != len(words):
        raise CorruptPayload("payload does not end where the symbols do")
    return out


def _find(cums: list[int], slot: int) -> int:
    lo, hi = 0, len(cums) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cums[mid] <= slot:
            lo = mid
        else:
            hi = mid - 1
    return lo
