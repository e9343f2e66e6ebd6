"""The parts of an .xlsx or .ods (both are zip packages), unzipped here within the limits and checked
against their CRC before calamine sees them, and the XML parsers the format scanners read them with."""

from __future__ import annotations

import io
import zipfile
import zlib
from typing import Any
from xml.parsers import expat

from service.sheets.errors import UNREADABLE_EXCEL, UnreadableSheet
from service.sheets.limits import Limits, unpacked_too_large


class Package:
    """A zip package's XML parts and ``mimetype``, refused over the limits before any is unzipped."""

    def __init__(self, data: bytes, limits: Limits) -> None:
        try:
            self._archive = zipfile.ZipFile(io.BytesIO(data))
            infos = [i for i in self._archive.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, OSError, EOFError) as exc:
            raise UnreadableSheet(UNREADABLE_EXCEL) from exc
        if len(infos) > limits.max_parts:
            raise unpacked_too_large(limits)
        wanted = [i for i in infos if i.filename == "mimetype" or i.filename.endswith((".xml", ".rels"))]
        if sum(i.file_size for i in wanted) > limits.max_unpacked_bytes:
            raise unpacked_too_large(limits)
        #: The parts read, by name, in the zip's order; everything else (images…) is left out.
        self.by_name = {i.filename: i for i in wanted}

    def part(self, name: str) -> bytes:
        """One part, unzipped; ``KeyError`` if the package has none of that name."""
        info = self.by_name[name]
        try:
            chunks = []
            with self._archive.open(info) as f:  # zipfile stops at the declared size and checks the CRC
                while chunk := f.read(1 << 20):  # in small reads: one big read inflates that much first
                    chunks.append(chunk)
            out = b"".join(chunks)
        except (
            zipfile.BadZipFile,
            zlib.error,
            NotImplementedError,
            RuntimeError,
            ValueError,
            OSError,
            EOFError,
        ) as exc:
            raise UnreadableSheet(UNREADABLE_EXCEL) from exc
        if len(out) != info.file_size:
            raise UnreadableSheet(UNREADABLE_EXCEL)
        return out


def element_tree(data: bytes) -> Any:
    """A small part (relationships, the workbook) as an ElementTree element."""
    from xml.etree import ElementTree

    try:
        return ElementTree.fromstring(data)  # expat >= 2.4 refuses entity-expansion bombs
    except ElementTree.ParseError as exc:
        raise UnreadableSheet(UNREADABLE_EXCEL) from exc


def parse(data: bytes, start: Any, end: Any = None, chars: Any = None) -> None:
    """A part streamed through expat's handlers, which keep only what they count."""
    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    if end is not None:
        parser.EndElementHandler = end
    if chars is not None:
        parser.CharacterDataHandler = chars
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise UnreadableSheet(UNREADABLE_EXCEL) from exc
