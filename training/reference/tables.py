"""Entropy table files (magic 89 4C 53 54): quantised frequency tables for the latent coder.

Layout (little-endian): magic (4), version u8 (1 or 2), precision u8 (8..16), table count u16, then
per table: offset i16 (value of symbol 0), symbol count u16 (escape included, last), frequencies u16
each >= 1 summing to 2**precision. See ``src/entropy/tables.ts``.

Version 1 ends there and has one table per latent channel (coder 1). Version 2 (coder 2) appends a
context section that picks a table per (channel, context):

    +0  1      context kind (1 = "nz-neighbour", the only kind defined)
    +1  2      channels C (1..1024)
    +3  1      neighbour cap U (0..15)
    +4  1      nz bin count B (1..16)
    +5  B-1    bin edges, u8 each >= 1, strictly increasing
    then       C * K u16 table indices, K = B * (U + 1), index c * K + k, each < T

and the file must end exactly there. See ``ContextSpec.context`` for how k is computed.
"""
from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass

MAGIC = bytes([0x89, 0x4C, 0x53, 0x54])
VERSION = 1
VERSION_CONTEXT = 2
CONTEXT_NZ_NEIGHBOUR = 1
MAX_CONTEXT_CAP = 15
MAX_CONTEXT_BINS = 16
MIN_PRECISION, MAX_PRECISION = 8, 16
MAX_TABLES, MAX_SYMBOLS = 1024, 4096


@dataclass(frozen=True)
class Table:
    offset: int
    freqs: tuple[int, ...]  # escape last

    @property
    def low(self) -> int:
        return self.offset

    @property
    def high(self) -> int:
        return self.offset + len(self.freqs) - 2

    @property
    def escape(self) -> int:
        return len(self.freqs) - 1


@dataclass(frozen=True)
class ContextSpec:
    """Context section of a v2 table file: which table codes each (channel, context).

    For latent y[c, i, j] (channel-major, raster order) the decoder already knows
    z = the number of earlier channels c' < c with y[c', i, j] != 0, and the absolute values of the
    neighbours above and to the left in the same channel (0 outside the tensor). Then
    ``k = context(z, |up| + |left|)`` and the table is ``table_map[c * contexts + k]``.
    """

    kind: int
    channels: int
    cap: int  # U: the neighbour sum is clamped to 0..U
    edges: tuple[int, ...]  # B - 1 bin edges on z
    table_map: tuple[int, ...]  # channels * contexts table indices

    def __post_init__(self):
        if self.kind != CONTEXT_NZ_NEIGHBOUR:
            raise ValueError(f"context kind {self.kind} is not defined (1 = nz-neighbour)")
        if not 1 <= self.channels <= MAX_TABLES:
            raise ValueError(f"{self.channels} channels; allowed 1..{MAX_TABLES}")
        if not 0 <= self.cap <= MAX_CONTEXT_CAP:
            raise ValueError(f"neighbour cap {self.cap} outside 0..{MAX_CONTEXT_CAP}")
        if len(self.edges) > MAX_CONTEXT_BINS - 1:
            raise ValueError(f"{len(self.edges) + 1} bins; allowed 1..{MAX_CONTEXT_BINS}")
        if any(not 1 <= e <= 255 for e in self.edges) or any(a >= b for a, b in zip(self.edges, self.edges[1:])):
            raise ValueError("bin edges must be 1..255 and strictly increasing")
        if len(self.table_map) != self.channels * self.contexts:
            raise ValueError(f"table map has {len(self.table_map)} entries, not {self.channels * self.contexts}")
        if any(not 0 <= t < MAX_TABLES for t in self.table_map):
            raise ValueError(f"table indices must be 0..{MAX_TABLES - 1}")

    @property
    def bins(self) -> int:
        """B: number of bins on z."""
        return len(self.edges) + 1

    @property
    def contexts(self) -> int:
        """K = B * (U + 1): contexts per channel."""
        return self.bins * (self.cap + 1)

    def context(self, z: int, up_plus_left: int) -> int:
        """k for ``z`` nonzero earlier channels and ``|up| + |left|`` in this channel."""
        zbin = sum(1 for e in self.edges if e <= z)
        return zbin * (self.cap + 1) + min(up_plus_left, self.cap)

    def table_index(self, channel: int, k: int) -> int:
        """The table that codes context ``k`` of ``channel``."""
        return self.table_map[channel * self.contexts + k]


@dataclass(frozen=True)
class TableSet:
    """Tables plus, for a v2 file, the context section that picks one per symbol (coder 2)."""

    precision: int
    tables: tuple[Table, ...]
    context: ContextSpec | None = None

    def __post_init__(self):
        if not MIN_PRECISION <= self.precision <= MAX_PRECISION:
            raise ValueError(f"precision {self.precision} outside {MIN_PRECISION}..{MAX_PRECISION}")
        if not 1 <= len(self.tables) <= MAX_TABLES:
            raise ValueError(f"{len(self.tables)} tables; allowed 1..{MAX_TABLES}")
        for i, t in enumerate(self.tables):
            n = len(t.freqs)
            if not 2 <= n <= min(MAX_SYMBOLS, 1 << self.precision):
                raise ValueError(f"table {i} has {n} symbols")
            if t.offset < -32768 or t.high > 32767:
                raise ValueError(f"table {i} covers values outside int16")
            if min(t.freqs) < 1 or max(t.freqs) > 0xFFFF or sum(t.freqs) != 1 << self.precision:
                raise ValueError(f"table {i}: frequencies must be 1..65535 and sum to 2^{self.precision}")
        if self.context is not None and max(self.context.table_map) >= len(self.tables):
            raise ValueError(f"table map points past the {len(self.tables)} tables")

    @property
    def version(self) -> int:
        """File version: 2 when a context section is present, else 1."""
        return VERSION if self.context is None else VERSION_CONTEXT

    @property
    def channels(self) -> int:
        """Latent channels this set codes: C of the context section (v2), else one per table (v1)."""
        return len(self.tables) if self.context is None else self.context.channels

    def cums(self, index: int) -> list[int]:
        out, acc = [], 0
        for f in self.tables[index].freqs:
            out.append(acc)
            acc += f
        return out

    def to_bytes(self) -> bytes:
        """The table file: v1 without a context section, v2 with one."""
        out = bytearray(MAGIC)
        out += struct.pack("<BBH", self.version, self.precision, len(self.tables))
        for t in self.tables:
            out += struct.pack("<hH", t.offset, len(t.freqs))
            out += struct.pack(f"<{len(t.freqs)}H", *t.freqs)
        ctx = self.context
        if ctx is not None:
            out += struct.pack("<BHBB", ctx.kind, ctx.channels, ctx.cap, ctx.bins)
            out += bytes(ctx.edges)
            out += struct.pack(f"<{len(ctx.table_map)}H", *ctx.table_map)
        return bytes(out)

    @staticmethod
    def from_bytes(data: bytes) -> "TableSet":
        """Strict reader for v1 and v2 files: every field validated, the length must be exact."""
        if len(data) < 8 or data[:4] != MAGIC or data[4] not in (VERSION, VERSION_CONTEXT):
            raise ValueError("not an entropy table file v1 or v2")
        precision, count = data[5], struct.unpack_from("<H", data, 6)[0]
        pos, tables = 8, []

        def need(size: int) -> None:
            if pos + size > len(data):
                raise ValueError("table file ends early")

        for _ in range(count):
            need(4)
            offset, size = struct.unpack_from("<hH", data, pos)
            pos += 4
            need(2 * size)
            freqs = struct.unpack_from(f"<{size}H", data, pos)
            pos += 2 * size
            tables.append(Table(offset, tuple(freqs)))
        context = None
        if data[4] == VERSION_CONTEXT:
            need(5)
            kind, channels, cap, bins = struct.unpack_from("<BHBB", data, pos)
            pos += 5
            if not 1 <= bins <= MAX_CONTEXT_BINS or cap > MAX_CONTEXT_CAP:
                raise ValueError(f"bad context section: {bins} bins, cap {cap}")
            need(bins - 1)
            edges = tuple(data[pos:pos + bins - 1])
            pos += bins - 1
            entries = channels * bins * (cap + 1)
            need(2 * entries)
            table_map = struct.unpack_from(f"<{entries}H", data, pos)
            pos += 2 * entries
            context = ContextSpec(kind, channels, cap, edges, tuple(table_map))
        if pos != len(data):
            raise ValueError("trailing bytes after the " + ("last table" if context is None else "context section"))
        return TableSet(precision, tuple(tables), context)

    def table_hash(self) -> str:
        """First 8 bytes of the SHA-256 of the file, as the bitstream header carries it (hex)."""
        return hashlib.sha256(self.to_bytes()).hexdigest()[:16]


def quantize_pmf(pmf: list[float], precision: int) -> list[int]:
    """Integer frequencies summing to 2**precision, each >= 1, close to ``pmf`` in KL divergence.

    Starts from floor(p * M) clamped to 1, then hands out (or takes back) single counts where the
    change in expected code length is best, so rare symbols keep a non-zero frequency and the
    quantisation loss stays near the minimum. Deterministic: ties break by symbol index.
    """
    total = 1 << precision
    s = float(sum(pmf))
    if s <= 0 or len(pmf) < 2:
        raise ValueError("pmf must have positive mass and at least two symbols")
    p = [max(float(x), 0.0) / s for x in pmf]
    freqs = [max(1, int(math.floor(x * total))) for x in p]
    diff = total - sum(freqs)
    while diff != 0:
        if diff > 0:
            # Adding one count to symbol i saves p_i * log2((f+1)/f) bits per symbol.
            best = max(range(len(p)), key=lambda i: (p[i] * math.log2((freqs[i] + 1) / freqs[i]), -i))
            freqs[best] += 1
            diff -= 1
        else:
            candidates = [i for i in range(len(p)) if freqs[i] > 1]
            best = min(candidates, key=lambda i: (p[i] * math.log2(freqs[i] / (freqs[i] - 1)), i))
            freqs[best] -= 1
            diff += 1
    return freqs
