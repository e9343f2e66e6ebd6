"""Sealed fields: 身份证号, phone numbers and addresses stored encrypted, read as plain values.

A model that holds personal fields mixes in :class:`SealedRow` and declares each field as a
:class:`Sealed` descriptor beside the column that keeps it sealed (``<name>_sealed``)::

    class Case(SealedRow, Base):
        id_number_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
        id_number_bidx: Mapped[str | None] = mapped_column(String(64), index=True)
        id_number = Sealed[str](index="id_number")

The rest of the code reads and assigns ``case.id_number`` as before. An assigned value waits in the
column as a :class:`_Unsealed` marker (so the row counts as changed) and is sealed by the keyring when
the row is flushed; a stored value is opened when first read, and kept while the stored bytes stay
the same. The keyring travels with the session (``session.info["keyring"]``, set by
``Database``), never read from a global, so two installations in one process keep their keys apart.

**Associated data.** Every value is sealed with ``docsign/field/<table>/<column>/<row_key>``: the
table, the field and the row's ``row_key``, 16 random bytes made when the row is first flushed and
never changed. A value copied to another row, or to another column of the same row, does not open.
The row key stands for the row instead of its id because the id is not known before the INSERT:
sealing after it would need a second write of every new row (twice the writes of a batch of
notices), with the plain value in the row in between.

**Blind indexes.** A field declared with ``index=`` also fills ``<name>_bidx``: the keyring's
HMAC-SHA256 of the value (spaces removed, upper case) under a key derived per purpose. The same
value gives the same index in every table with that purpose (``id_number``: cases and the
适龄儿童台账 match children by it), so equality lookups and unique constraints use the index and no
query opens a whole table. An empty value has no index (``None``): erased rows never match.
"""

from __future__ import annotations

import json as _json
import secrets
from typing import Any, ClassVar, Generic, TypeVar, overload

from sqlalchemy import String, event
from sqlalchemy.orm import Mapped, Mapper, QueryContext, Session, mapped_column, object_session

from service.crypto import Keyring
from service.errors import DocsignError

T = TypeVar("T")

#: Where the session keeps the keyring its rows are sealed with.
KEYRING = "keyring"
#: Where a row loaded or flushed remembers its session's keyring, to be read after the session ends.
_RING = "_docsign_keyring"
ROW_KEY_BYTES = 16


class KeyringUnavailable(DocsignError):
    code = "KEYRING_UNAVAILABLE"
    default_message = "无法读取加密字段：当前数据库会话没有加密密钥。请联系管理员检查服务配置。"


def new_row_key() -> str:
    return secrets.token_hex(ROW_KEY_BYTES)


def index_form(value: str) -> str:
    """What a blind index is computed over: the value without spaces, in upper case (an ID number
    typed with a lower-case x, or a phone with spaces, is the same value)."""
    return "".join(value.split()).upper()


def blind_index(keyring: Keyring, value: str | None, purpose: str) -> str | None:
    """The blind index of ``value`` for ``purpose`` (``None`` for an empty value)."""
    if value is None:
        return None
    form = index_form(value)
    return keyring.blind_index(form, purpose) if form else None


def encode_value(value: Any, *, json: bool) -> bytes:
    if json:
        return _json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    return str(value).encode()


def decode_value(plain: bytes, *, json: bool) -> Any:
    return _json.loads(plain) if json else plain.decode()


def field_aad(table: str, column: str, row_key: str) -> bytes:
    return f"docsign/field/{table}/{column}/{row_key}".encode()


def session_keyring(session: Session) -> Keyring:
    ring = session.info.get(KEYRING)
    if ring is None:
        raise KeyringUnavailable()
    assert isinstance(ring, Keyring)
    return ring


def index_of(session: Session, value: str | None, purpose: str) -> str | None:
    """The blind index a lookup compares with (``Case.id_number_bidx == index_of(...)``)."""
    return blind_index(session_keyring(session), value, purpose)


class _Unsealed:
    """A value assigned and not yet sealed (what the column holds until the row is flushed)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return False  # always a change to the column

    __hash__ = object.__hash__


class Sealed(Generic[T]):
    """A personal field kept sealed in the column ``<name>_sealed`` (``json=True``: any JSON value,
    e.g. a notice's fields, sealed whole); ``index`` names the blind index's purpose."""

    def __init__(self, *, index: str | None = None, json: bool = False) -> None:
        self.purpose = index
        self.json = json

    def __set_name__(self, owner: type, name: str) -> None:
        self.owner = owner
        self.name = name
        self.column = f"{name}_sealed"
        self.index = f"{name}_bidx" if self.purpose else None
        self.cache = f"_docsign_plain_{name}"
        fields: list[Sealed[Any]] = list(owner.__dict__.get("__sealed__", ()))
        fields.append(self)
        owner.__sealed__ = tuple(fields)  # type: ignore[attr-defined]

    @overload
    def __get__(self, obj: None, owner: type) -> Sealed[T]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> T: ...
    def __get__(self, obj: object | None, owner: type) -> Sealed[T] | T:
        if obj is None:
            return self
        stored = getattr(obj, self.column)
        if isinstance(stored, _Unsealed):
            return stored.value  # type: ignore[no-any-return]
        if stored is None:
            return None  # type: ignore[return-value]
        cached = obj.__dict__.get(self.cache)
        if cached is not None and cached[0] is stored:
            return cached[1]  # type: ignore[no-any-return]
        value = self.open(_ring_of(obj), stored, obj.row_key)  # type: ignore[attr-defined]
        obj.__dict__[self.cache] = (stored, value)
        return value

    def open(self, ring: Keyring, stored: bytes | None, row_key: str) -> T:
        """The value sealed in ``stored`` for the row with ``row_key`` (for a query that selects
        the sealed column itself, e.g. ``select(RosterEntry.fields_sealed, RosterEntry.row_key)``)."""
        if stored is None:
            return None  # type: ignore[return-value]
        table: str = self.owner.__tablename__  # type: ignore[attr-defined]
        return self.decode(ring.decrypt(stored, field_aad(table, self.name, row_key)))  # type: ignore[no-any-return]

    def __set__(self, obj: object, value: T) -> None:
        setattr(obj, self.column, _Unsealed(value))

    def encode(self, value: Any) -> bytes:
        return encode_value(value, json=self.json)

    def decode(self, plain: bytes) -> Any:
        return decode_value(plain, json=self.json)

    def seal(self, obj: SealedRow, ring: Keyring) -> None:
        """Seal the value assigned to ``obj`` (if any) and fill its blind index."""
        stored = obj.__dict__.get(self.column)
        if not isinstance(stored, _Unsealed):
            return
        value = stored.value
        table: str = self.owner.__tablename__  # type: ignore[attr-defined]
        blob = None if value is None else ring.encrypt(self.encode(value), field_aad(table, self.name, obj.row_key))
        setattr(obj, self.column, blob)
        if blob is not None:
            obj.__dict__[self.cache] = (blob, value)
        if self.index is not None:
            assert self.purpose is not None
            setattr(obj, self.index, blind_index(ring, value if isinstance(value, str) else None, self.purpose))


class SealedRow:
    """A model with :class:`Sealed` fields: its row key, and its fields sealed at every flush."""

    __sealed__: ClassVar[tuple[Sealed[Any], ...]] = ()

    #: Random, made when the row is first flushed, never changed: the row's identity in the
    #: associated data of its sealed fields.
    row_key: Mapped[str] = mapped_column(String(2 * ROW_KEY_BYTES), default=new_row_key)


def _ring_of(obj: object) -> Keyring:
    session = object_session(obj)
    ring = session.info.get(KEYRING) if session is not None else obj.__dict__.get(_RING)
    if ring is None:
        raise KeyringUnavailable()
    assert isinstance(ring, Keyring)
    return ring


def _sealed_fields(obj: SealedRow) -> list[Sealed[Any]]:
    return [f for klass in type(obj).__mro__ for f in klass.__dict__.get("__sealed__", ())]


@event.listens_for(SealedRow, "before_insert", propagate=True)
@event.listens_for(SealedRow, "before_update", propagate=True)
def _seal_row(_mapper: Mapper[Any], _connection: Any, target: SealedRow) -> None:
    if target.row_key is None:
        target.row_key = new_row_key()
    ring = _ring_of(target)
    target.__dict__[_RING] = ring
    for field in _sealed_fields(target):
        field.seal(target, ring)


@event.listens_for(SealedRow, "load", propagate=True)
def _remember_ring(target: SealedRow, context: QueryContext) -> None:
    ring = context.session.info.get(KEYRING) if context.session is not None else None
    if ring is not None:
        target.__dict__[_RING] = ring
