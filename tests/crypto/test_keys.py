"""The keyring and the sealed format: values open only with their own associated data, tampering
is refused by name, and what was sealed before a master key rotation opens after it."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest

from service.crypto import CHUNK, DecryptionFailed, KeyFileExposed, Keyring, KeysMissing, MasterKeyInUse, NotSealed
from service.crypto.envelope import HEADER_SIZE, TAG, Header


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "sm4-gcm"])
def test_a_value_opens_with_its_row_and_no_other(tmp_path: Path, cipher: str) -> None:
    ring = Keyring(tmp_path / "keys", cipher)  # type: ignore[arg-type]
    blob = ring.encrypt(b"370112201804150027", b"cases:42:id_number")
    assert b"370112201804150027" not in blob
    header = Header.parse(blob)
    assert header.cipher == cipher and header.format == 1
    assert ring.decrypt(blob, b"cases:42:id_number") == b"370112201804150027"
    # the same value copied into another row (or another column) does not open there
    for other in (b"cases:43:id_number", b"cases:42:guardian_phone", b""):
        with pytest.raises(DecryptionFailed) as refused:
            ring.decrypt(blob, other)
        assert refused.value.code == "DECRYPTION_FAILED"
    # two seals of the same value differ (random nonce): equal ciphertexts reveal nothing
    assert ring.encrypt(b"x", b"a") != ring.encrypt(b"x", b"a")
    # a process that reads the keys afresh opens it, whichever cipher it is set to seal with now
    other_cipher = "aes-256-gcm" if cipher == "sm4-gcm" else "sm4-gcm"
    assert Keyring(tmp_path / "keys", other_cipher).decrypt(blob, b"cases:42:id_number") == b"370112201804150027"  # type: ignore[arg-type]


def test_tampered_values_and_files_are_refused(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys")
    blob = ring.encrypt(b"guardian 13800138000", b"guardians:7:phone")
    for position in (7, 10, 20, HEADER_SIZE, len(blob) - 1):  # cipher id, key id, nonce, body, tag
        bad = bytearray(blob)
        bad[position] ^= 0x01
        with pytest.raises(DecryptionFailed):
            ring.decrypt(bytes(bad), b"guardians:7:phone")
    with pytest.raises(DecryptionFailed):
        ring.decrypt(blob[:-1], b"guardians:7:phone")
    with pytest.raises(NotSealed):
        ring.decrypt(b"%PDF-1.7 plain", b"")

    data = os.urandom(2 * CHUNK + 1000)  # three chunks
    sealed = b"".join(ring.encrypt_stream([data[:5000], data[5000:]], b"archive:x"))
    assert b"".join(ring.decrypt_stream(io.BytesIO(sealed), b"archive:x")) == data
    assert ring.decrypt(sealed, b"archive:x") == data
    piece = CHUNK + TAG
    first, second, last = (
        sealed[HEADER_SIZE : HEADER_SIZE + piece],
        sealed[HEADER_SIZE + piece : HEADER_SIZE + 2 * piece],
        sealed[HEADER_SIZE + 2 * piece :],
    )
    head = sealed[:HEADER_SIZE]
    broken = {
        "cut after a full chunk": head + first + second,
        "last chunk dropped, a full one made last": head + first + second[:-1],
        "chunks swapped": head + second + first + last,
        "a bit flipped in the middle": sealed[: HEADER_SIZE + piece + 7] + b"\0" + sealed[HEADER_SIZE + piece + 8 :],
        "another object's name": sealed,
    }
    for what, bad_stream in broken.items():
        aad = b"archive:y" if what == "another object's name" else b"archive:x"
        with pytest.raises(DecryptionFailed):
            b"".join(ring.decrypt_stream(io.BytesIO(bad_stream), aad))
    # a chunk that fails is never handed out: the reader got the first chunk only
    got = []
    with pytest.raises(DecryptionFailed):
        for block in ring.decrypt_stream(io.BytesIO(head + first + second[:-1] + b"\0"), b"archive:x"):
            got.append(block)
    assert got == [data[:CHUNK]]


def test_what_was_sealed_before_a_rotation_opens_after_it_and_old_keys_retire(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    ring = Keyring(folder)
    blob = ring.encrypt(b"110101200001011234", b"roster_entries:9:id_number")
    index = ring.blind_index("110101200001011234", "id_number")
    first_master = ring.status().masters[0].id

    # a rotation killed after the first data key: another process sees it unfinished
    def killed(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ring.rotate(progress=killed)
    status = Keyring(folder).status()
    assert status.rotation_unfinished and len(status.masters) == 2
    with pytest.raises(MasterKeyInUse):
        Keyring(folder).retire()
    assert Keyring(folder).decrypt(blob, b"roster_entries:9:id_number") == b"110101200001011234"

    seen: list[tuple[int, int]] = []
    new_master, rewrapped = Keyring(folder).rotate(progress=lambda done, total: seen.append((done, total)))
    assert rewrapped == 1 and seen == [(1, 1)]  # resumed: the key re-wrapped already is not redone
    status = Keyring(folder).status()
    assert not status.rotation_unfinished and [m.id for m in status.masters] == [first_master, new_master]
    assert all(k.master == new_master for k in status.data_keys)

    assert Keyring(folder).retire() == [first_master]
    assert not (folder / f"master-{first_master}.key").exists()
    assert first_master not in (folder / "keyring.json").read_text()
    fresh = Keyring(folder)  # a process started after the old master key is gone
    assert fresh.decrypt(blob, b"roster_entries:9:id_number") == b"110101200001011234"
    assert fresh.blind_index("110101200001011234", "id_number") == index
    assert ring.decrypt(blob, b"roster_entries:9:id_number") == b"110101200001011234"  # and one running since


def test_blind_indexes_find_equal_values_and_say_nothing_else(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys")
    a = ring.blind_index("370112201804150027", "id_number")
    assert a == ring.blind_index("370112201804150027", "id_number") and len(a) == 64
    assert a != ring.blind_index("370112201804150028", "id_number")
    assert a != ring.blind_index("370112201804150027", "guardian_phone")  # per column
    assert a != Keyring(tmp_path / "other").blind_index("370112201804150027", "id_number")  # keyed


def test_key_files_are_owner_only_and_refused_when_exposed(tmp_path: Path) -> None:
    folder = tmp_path / "var" / "keys"
    ring = Keyring(folder)
    assert ring.ensure() and not Keyring(folder).ensure()
    assert _mode(folder) == 0o700
    keys = [*sorted(folder.glob("*.key")), folder / "keyring.json"]
    assert len(keys) == 2 and all(_mode(path) == 0o600 for path in keys)
    ring_file = json.loads((folder / "keyring.json").read_text())
    (master,) = folder.glob("master-*.key")
    assert master.read_bytes().hex() not in (folder / "keyring.json").read_text()  # wrapped only
    assert len(ring_file["data_keys"]) == 2

    master.chmod(0o644)
    with pytest.raises(KeyFileExposed) as exposed:
        Keyring(folder).encrypt(b"x", b"")
    assert "chmod 600" in exposed.value.message
    master.chmod(0o600)
    master.unlink()
    with pytest.raises(KeysMissing):
        Keyring(folder).encrypt(b"x", b"")
