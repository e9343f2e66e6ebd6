"""The sealed format: what a value or a file encrypted under a data key looks like.

Every sealed blob starts with a 28-byte header, authenticated with the content::

    0   6  magic      b"\\x89DSENC" (a first byte no text, PDF or Office file starts with)
    6   1  format     1: one piece (a value), 2: a stream of chunks (a file)
    7   1  cipher     1: AES-256-GCM, 2: SM4-GCM
    8   8  key id     the data key (its id in the keyring)
    16 12  nonce      random; a stream uses its first 7 bytes as the prefix of every chunk's nonce

Format 1 is the header then ``ciphertext || tag``. Format 2 cuts the plaintext into chunks of
:data:`CHUNK` bytes, the last one always shorter (possibly empty, so a reader knows it is the last
without reading ahead), and seals each with the nonce
``prefix(7) || chunk number(4, big-endian) || last(1)`` (the STREAM construction): chunks cannot be
reordered, dropped or the file cut short without a chunk failing. The associated data of every
seal is the header followed by the caller's associated data (a row's identity, an object's digest),
so a blob copied to another row, or a header edited, does not open.

The key that seals is derived from the data key per cipher (HKDF-SHA256, ``info`` naming the cipher),
so one data key never serves two ciphers, and SM4's 128-bit key comes from the same 256-bit data key.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.errors import DocsignError

MAGIC = b"\x89DSENC"
HEADER = struct.Struct(">6sBB8s12s")
HEADER_SIZE = HEADER.size  # 28
TAG = 16
#: Plaintext bytes per chunk of a stream: the archive's read block, so memory stays at two chunks.
CHUNK = 1 << 20
ONE_PIECE = 1
STREAM = 2

CipherName = Literal["aes-256-gcm", "sm4-gcm"]
CIPHER_IDS: dict[CipherName, int] = {"aes-256-gcm": 1, "sm4-gcm": 2}
CIPHER_NAMES: dict[int, CipherName] = {v: k for k, v in CIPHER_IDS.items()}
_KEY_BYTES: dict[CipherName, int] = {"aes-256-gcm": 32, "sm4-gcm": 16}


class DecryptionFailed(DocsignError):
    """A sealed blob that does not open: tampered with, cut short, or moved to another row/object."""

    code = "DECRYPTION_FAILED"
    http_status = 500
    default_message = "加密数据无法解密：数据可能已被改动、截断或挪用到别处，请联系管理员检查。"


class NotSealed(DecryptionFailed):
    code = "NOT_SEALED"
    default_message = "数据不是本服务的加密格式（缺少加密头），无法解密。"


@dataclass(frozen=True)
class Header:
    format: int
    cipher: CipherName
    key_id: bytes
    nonce: bytes

    def pack(self) -> bytes:
        return HEADER.pack(MAGIC, self.format, CIPHER_IDS[self.cipher], self.key_id, self.nonce)

    @classmethod
    def parse(cls, data: bytes) -> Header:
        if len(data) < HEADER_SIZE or not data.startswith(MAGIC):
            raise NotSealed()
        _, fmt, cipher, key_id, nonce = HEADER.unpack_from(data)
        if fmt not in (ONE_PIECE, STREAM) or cipher not in CIPHER_NAMES:
            raise DecryptionFailed(f"加密数据的格式（{fmt}）或算法（{cipher}）无法识别，可能由更新的版本写入或已损坏。")
        return cls(fmt, CIPHER_NAMES[cipher], key_id, nonce)


def is_sealed(prefix: bytes) -> bool:
    """Whether data starting with ``prefix`` (at least 6 bytes) is sealed."""
    return prefix.startswith(MAGIC)


def cipher_key(data_key: bytes, cipher: CipherName) -> bytes:
    """The key ``cipher`` seals with, derived from a 256-bit data key."""
    info = b"docsign/" + cipher.encode()
    return HKDF(hashes.SHA256(), _KEY_BYTES[cipher], salt=None, info=info).derive(data_key)


def _seal(cipher: CipherName, key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
    if cipher == "aes-256-gcm":
        return AESGCM(key).encrypt(nonce, data, aad)
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(aad)
    return enc.update(data) + enc.finalize() + enc.tag


def _open(cipher: CipherName, key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
    if len(data) < TAG:
        raise InvalidTag()
    if cipher == "aes-256-gcm":
        return AESGCM(key).decrypt(nonce, data, aad)
    dec = Cipher(algorithms.SM4(key), modes.GCM(nonce, data[-TAG:])).decryptor()
    dec.authenticate_additional_data(aad)
    return dec.update(data[:-TAG]) + dec.finalize()


def _chunk_nonce(prefix: bytes, number: int, last: bool) -> bytes:
    return prefix[:7] + struct.pack(">IB", number, 1 if last else 0)


def _aad(header: bytes, aad: bytes) -> bytes:
    return header + struct.pack(">I", len(aad)) + aad


#: The sealing key of a data key id and cipher (the keyring's lookup); raises if the key is unknown.
KeyLookup = Callable[[bytes, CipherName], bytes]


def seal(key: bytes, key_id: bytes, cipher: CipherName, plaintext: bytes, aad: bytes) -> bytes:
    """A value sealed in one piece (format 1)."""
    header = Header(ONE_PIECE, cipher, key_id, os.urandom(12)).pack()
    return header + _seal(cipher, key, header[16:], plaintext, _aad(header, aad))


def seal_stream(key: bytes, key_id: bytes, cipher: CipherName, blocks: Iterable[bytes], aad: bytes) -> Iterator[bytes]:
    """A file sealed as a stream (format 2): the header, then each chunk as soon as it is full."""
    header = Header(STREAM, cipher, key_id, os.urandom(7) + bytes(5)).pack()
    full_aad = _aad(header, aad)
    prefix = header[16:23]
    yield header
    pending = bytearray()
    number = 0
    for block in blocks:
        pending += block
        # a full chunk is never the last one: the last is shorter, empty if need be
        while len(pending) >= CHUNK:
            yield _seal(cipher, key, _chunk_nonce(prefix, number, False), bytes(pending[:CHUNK]), full_aad)
            del pending[:CHUNK]
            number += 1
    yield _seal(cipher, key, _chunk_nonce(prefix, number, True), bytes(pending), full_aad)


def open_sealed(lookup: KeyLookup, blob: bytes, aad: bytes) -> bytes:
    """The plaintext of a sealed value or file held in memory (either format)."""
    header = Header.parse(blob)
    key = lookup(header.key_id, header.cipher)
    head = blob[:HEADER_SIZE]
    if header.format == ONE_PIECE:
        try:
            return _open(header.cipher, key, header.nonce, blob[HEADER_SIZE:], _aad(head, aad))
        except InvalidTag:
            raise DecryptionFailed() from None
    return b"".join(_open_chunks(header, head, key, _pieces(blob[HEADER_SIZE:]), aad))


def open_stream(lookup: KeyLookup, stream: BinaryIO, aad: bytes) -> Iterator[bytes]:
    """The plaintext of a sealed file, chunk by chunk, read from ``stream`` (closed at the end)."""
    with stream:
        head = stream.read(HEADER_SIZE)
        header = Header.parse(head)
        key = lookup(header.key_id, header.cipher)
        if header.format == ONE_PIECE:
            yield open_sealed(lookup, head + stream.read(), aad)
            return

        def pieces() -> Iterator[bytes]:
            while piece := stream.read(CHUNK + TAG):
                yield piece

        yield from _open_chunks(header, head, key, pieces(), aad)


def _pieces(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), CHUNK + TAG):
        yield body[start : start + CHUNK + TAG]


def _open_chunks(header: Header, head: bytes, key: bytes, pieces: Iterator[bytes], aad: bytes) -> Iterator[bytes]:
    full_aad = _aad(head, aad)
    for number, piece in enumerate(pieces):
        last = len(piece) < CHUNK + TAG
        try:
            yield _open(header.cipher, key, _chunk_nonce(header.nonce, number, last), piece, full_aad)
        except InvalidTag:
            raise DecryptionFailed() from None
        if last:
            return
    raise DecryptionFailed()  # cut short after a full chunk: the last one is missing
