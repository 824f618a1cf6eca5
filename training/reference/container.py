"""Bitstream container v1 (see ``docs/FORMAT.md``): header, parts, CRC-32C."""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from .crc32c import crc32c

MAGIC = bytes([0x89, 0x4C, 0x53, 0x42])
VERSION = 1
FIXED_HEADER_BYTES = 27
ELEMENT_INT16 = 1
MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")


@dataclass
class Stream:
    width: int
    height: int
    stride: int
    channels: int
    model_id: str
    table_hash: str  # 16 hex digits
    latents: bytes  # LATN body
    extra_parts: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.channels, -(-self.height // self.stride), -(-self.width // self.stride))


def write_stream(s: Stream) -> bytes:
    if not MODEL_ID.match(s.model_id) or not re.fullmatch(r"[0-9a-f]{16}", s.table_hash):
        raise ValueError("bad model id or table hash")
    parts = [("LATN", s.latents)] + list(s.extra_parts)
    body = b"".join(tag.encode("ascii") + struct.pack("<I", len(b)) + b for tag, b in parts)
    total = FIXED_HEADER_BYTES + len(s.model_id) + len(body) + 4
    head = MAGIC + struct.pack(
        "<BBIHHBBHB", VERSION, 0, total, s.width, s.height, s.stride, ELEMENT_INT16, s.channels, len(s.model_id)
    ) + bytes.fromhex(s.table_hash) + s.model_id.encode("ascii")
    data = head + body
    return data + struct.pack("<I", crc32c(data))


def read_stream(data: bytes) -> Stream:
    """Strict reader for tests and tools; the TypeScript reader is the one that faces the network."""
    if data[:4] != MAGIC or data[4] != VERSION or data[5] != 0:
        raise ValueError("not a v1 stream")
    total, width, height, stride, etype, channels, id_len = struct.unpack_from("<IHHBBHB", data, 6)
    if total != len(data) or etype != ELEMENT_INT16:
        raise ValueError("bad length or element type")
    if crc32c(data[:-4]) != struct.unpack_from("<I", data, len(data) - 4)[0]:
        raise ValueError("checksum mismatch")
    table_hash = data[19:27].hex()
    model_id = data[27:27 + id_len].decode("ascii")
    pos, end, latents, extra = 27 + id_len, len(data) - 4, None, []
    while pos < end:
        tag = data[pos:pos + 4].decode("ascii")
        (length,) = struct.unpack_from("<I", data, pos + 4)
        b = data[pos + 8:pos + 8 + length]
        if tag == "LATN":
            latents = b
        else:
            extra.append((tag, b))
        pos += 8 + length
    if latents is None or pos != end:
        raise ValueError("missing LATN or malformed parts")
    return Stream(width, height, stride, channels, model_id, table_hash, latents, extra)
