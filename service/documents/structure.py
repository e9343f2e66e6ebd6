"""Structure: what the bytes of a PDF say, before and beside the signatures.

Two kinds of question, both answered without validating anything:

- :func:`bytes_after_last_revision`: does the file end exactly where the last revision pyHanko
  parsed ends? Anything after it (appended objects, a second trailer pointing back at the signed
  cross-reference table, an incremental update some viewers repair into view) was added after
  signing and is covered by no signature.
- :func:`rough_counts`: upper bounds on the revisions and signatures of an upload, counted on the
  raw bytes in milliseconds, so a file built to be expensive is refused before pyHanko parses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.xref import XRefSectionType

#: What pyHanko and asn1crypto raise on malformed or hostile input: each is turned into a named
#: problem by the verifier, never a crash. pyHanko checks some structure with ``assert`` (a
#: catalog that is not a dictionary, for one) and refuses unsupported features with
#: NotImplementedError; deeply nested objects end in RecursionError.
MALFORMED = (
    PdfError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    AssertionError,
    NotImplementedError,
    RecursionError,
    OverflowError,
)

#: PDF white-space characters (ISO 32000-1, 7.2.2).
_WHITESPACE = b"\x00\t\n\x0c\r "
_END_OF_REVISION = re.compile(rb"startxref[\x00\t\n\x0c\r ]+(\d+)[\x00\t\n\x0c\r ]+%%EOF")
#: White space tolerated after the final ``%%EOF`` (an end-of-line, some padding): it carries no
#: content. Anything else, or more of it, is reported.
MAX_TRAILING_WHITESPACE = 64


def _skip_whitespace(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos] in _WHITESPACE:
        pos += 1
    return pos


def bytes_after_last_revision(reader: PdfFileReader, data: bytes) -> int:
    """How many bytes follow the end of the last revision ``reader`` parsed (0: none).

    The end of a revision is its cross-reference section, its trailer dictionary (for a
    cross-reference table), ``startxref`` with the offset pyHanko used, and ``%%EOF``. Whatever the
    bytes after that say, even a well-formed trailer of their own, they are counted. A revision
    whose end cannot be read the way pyHanko read it counts the whole remainder of the file.
    """
    xrefs = reader.xrefs
    last = xrefs.total_revisions - 1
    # the section written last in the file: the newest revision's, except in a linearized file,
    # whose final startxref points back at the first-page section near the start
    info = max((xrefs.get_xref_container_info(revision) for revision in range(last + 1)), key=lambda i: i.end_location)
    pos = info.end_location
    try:
        if info.xref_section_type == XRefSectionType.STREAM:
            pos = _skip_whitespace(data, pos)
            if data.startswith(b"endobj", pos):
                pos += len(b"endobj")
        else:
            # end_location is just after the ``trailer`` keyword: read the dictionary the way
            # pyHanko did, to find where it ends
            stream = reader.stream
            stream.seek(pos)
            generic.DictionaryObject.read_from_stream(stream, generic.TrailerReference(reader))
            pos = stream.tell()
    except MALFORMED:
        return len(data) - info.end_location
    pos = _skip_whitespace(data, pos)
    tail = _END_OF_REVISION.match(data, pos)
    if tail is None or int(tail.group(1)) != xrefs.get_startxref_for_revision(last):
        return len(data) - pos
    rest = data[tail.end() :]
    if len(rest) <= MAX_TRAILING_WHITESPACE and not rest.strip(_WHITESPACE):
        return 0
    return len(rest)


@dataclass(frozen=True)
class RoughCounts:
    """Upper bounds read from the raw bytes: every ``%%EOF`` marker and every ``/ByteRange`` key."""

    revisions: int
    signatures: int


_BYTE_RANGE = re.compile(rb"/ByteRange[\x00\t\n\x0c\r ]*\[")


def rough_counts(data: bytes) -> RoughCounts:
    """Counts in a few milliseconds even for a large file (a regular expression over the bytes).

    A signature dictionary hidden in a compressed object stream is not counted here; the
    sandboxed check counts again after parsing, under its CPU limit.
    """
    return RoughCounts(
        revisions=max(data.count(b"%%EOF"), data.count(b"startxref")),
        signatures=sum(1 for _ in _BYTE_RANGE.finditer(data)),
    )
