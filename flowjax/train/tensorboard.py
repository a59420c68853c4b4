"""TensorBoard event files written without TensorFlow.

An event file is a sequence of TFRecords (`uint64 length, masked crc32c(length), data,
masked crc32c(data)`), each holding a serialized `Event` protobuf. Scalars need only a few
protobuf fields, encoded here by hand:

    Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
              SessionLog session_log = 7; }
    Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
    SessionLog { SessionStatus status = 1; }   (START = 1)

A resumed run writes a SessionLog START at the first step it logs anew: TensorBoard then drops
the events of earlier files from that step on (those of the interrupted run past its
checkpoint), so no step is shown twice.
"""

import socket
import struct
import time
from pathlib import Path


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TFRecord framing uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    key = _varint((number << 3) | wire)
    if wire == 2:  # length-delimited
        return key + _varint(len(payload)) + payload
    return key + payload


def event_bytes(
    step: int,
    wall_time: float,
    scalars: dict[str, float] | None = None,
    file_version: str | None = None,
    session_start: bool = False,
) -> bytes:
    """A serialized Event with scalar summaries (or the file-version header event, or a
    SessionLog START)."""
    out = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step))
    if file_version is not None:
        out += _field(3, 2, file_version.encode())
    if session_start:
        out += _field(7, 2, _field(1, 0, _varint(1)))
    if scalars:
        values = b"".join(
            _field(1, 2, _field(1, 2, tag.encode()) + _field(2, 5, struct.pack("<f", value)))
            for tag, value in scalars.items()
        )
        out += _field(5, 2, values)
    return out


def record(data: bytes) -> bytes:
    """TFRecord framing of one payload."""
    length = struct.pack("<Q", len(data))
    return (
        length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))
    )


class EventFileWriter:
    """Appends scalar events to `<logdir>/events.out.tfevents.<time>.<host>`."""

    def __init__(self, logdir: str | Path) -> None:
        logdir = Path(logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        self.path = logdir / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
        self._file = open(self.path, "ab")  # noqa: SIM115  (closed in close())
        self._file.write(record(event_bytes(0, time.time(), file_version="brain.Event:2")))
        self._file.flush()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self._file.write(record(event_bytes(step, time.time(), values)))
        self._file.flush()

    def session_start(self, step: int) -> None:
        """Events of earlier files at `step` or later are orphaned (a resumed run)."""
        self._file.write(record(event_bytes(step, time.time(), session_start=True)))
        self._file.flush()

    def close(self) -> None:
        self._file.close()
