"""The results file of a batch, which is also its journal for ``--resume``.

One JSON object per line, written and flushed as each result arrives::

    {"line": 12, "idempotency_key": "…", "event_id": "evt-…"}
    {"line": 13, "idempotency_key": "…", "error": {"type": "BadRequestError", …}}

Each line reaches the operating system before the next result is handled, so a
killed process loses at most the line it was writing. Reading tolerates that: a
torn last line is cut off before new lines are appended, and any line that is not
a valid record is ignored. After a resumed run a line number may appear more than
once; its last record is the one that counts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

import msgspec

__all__ = ["ConfirmedLines", "Journal"]


class ConfirmedLines:
    """The set of input line numbers already published: one bit per line."""

    def __init__(self) -> None:
        self._bits = bytearray()
        self.count = 0

    def add(self, line: int) -> None:
        byte, bit = divmod(line, 8)
        if byte >= len(self._bits):
            self._bits.extend(bytes(byte + 1 - len(self._bits)))
        if not self._bits[byte] & (1 << bit):
            self._bits[byte] |= 1 << bit
            self.count += 1

    def __contains__(self, line: object) -> bool:
        if not isinstance(line, int) or line < 0:
            return False
        byte, bit = divmod(line, 8)
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << bit))


class _Record(msgspec.Struct):
    line: int
    event_id: str | None = None


_record_decoder = msgspec.json.Decoder(_Record)
_encoder = msgspec.json.Encoder()


class Journal:
    """Append results to ``path``; with ``resume``, first read which lines are done."""

    def __init__(self, path: str | os.PathLike[str], *, resume: bool) -> None:
        self.path = Path(path)
        self.confirmed = ConfirmedLines()
        self.ignored_lines = 0
        if resume and self.path.exists():
            self._read_and_repair()
        self._file: IO[bytes] = open(self.path, "ab" if resume else "wb")  # noqa: SIM115

    def write(self, record: dict[str, Any]) -> None:
        """Append one record and hand it to the operating system at once."""
        self._file.write(_encoder.encode(record) + b"\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def _read_and_repair(self) -> None:
        with open(self.path, "r+b") as journal:
            complete_until = 0
            for raw in journal:
                if not raw.endswith(b"\n"):
                    self.ignored_lines += 1
                    break
                complete_until += len(raw)
                try:
                    record = _record_decoder.decode(raw)
                except (msgspec.ValidationError, msgspec.DecodeError):
                    self.ignored_lines += 1
                    continue
                if record.event_id is not None:
                    self.confirmed.add(record.line)
            # A kill in the middle of a write leaves a line without its newline. Cutting
            # it off makes the next record start on a line of its own.
            journal.truncate(complete_until)
