"""Entropy table files (v1, magic 89 4C 53 54): one quantised frequency table per latent channel.

Layout (little-endian): magic (4), version u8 = 1, precision u8 (8..16), table count u16, then per
table: offset i16 (value of symbol 0), symbol count u16 (escape included, last), frequencies u16
each >= 1 summing to 2**precision. See ``src/entropy/tables.ts``.
"""
from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass

MAGIC = bytes([0x89, 0x4C, 0x53, 0x54])
VERSION = 1
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
class TableSet:
    precision: int
    tables: tuple[Table, ...]

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

    def cums(self, index: int) -> list[int]:
        out, acc = [], 0
        for f in self.tables[index].freqs:
            out.append(acc)
            acc += f
        return out

    def to_bytes(self) -> bytes:
        out = bytearray(MAGIC)
        out += struct.pack("<BBH", VERSION, self.precision, len(self.tables))
        for t in self.tables:
            out += struct.pack("<hH", t.offset, len(t.freqs))
            out += struct.pack(f"<{len(t.freqs)}H", *t.freqs)
        return bytes(out)

    @staticmethod
    def from_bytes(data: bytes) -> "TableSet":
        if len(data) < 8 or data[:4] != MAGIC or data[4] != VERSION:
            raise ValueError("not an entropy table file v1")
        precision, count = data[5], struct.unpack_from("<H", data, 6)[0]
        pos, tables = 8, []
        for _ in range(count):
            offset, size = struct.unpack_from("<hH", data, pos)
            pos += 4
            freqs = struct.unpack_from(f"<{size}H", data, pos)
            pos += 2 * size
            tables.append(Table(offset, tuple(freqs)))
        if pos != len(data):
            raise ValueError("trailing bytes after the last table")
        return TableSet(precision, tuple(tables))

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
