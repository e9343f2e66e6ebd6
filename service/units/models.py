"""The unit tree: the bureau (区教体局), its 街道教育办, and the schools under either."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db.base import Base, utcnow


class UnitType(StrEnum):
    BUREAU = "bureau"  # 区（县）教体局
    OFFICE = "office"  # 街道教育办公室
    SCHOOL = "school"  # 义务教育阶段学校


UNIT_TYPE_TITLES = {UnitType.BUREAU: "教体局", UnitType.OFFICE: "街道教育办", UnitType.SCHOOL: "学校"}


class Unit(Base):
    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The code from the unit sheet (学校代码 or the bureau's own); stable across imports.
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    #: 负责人: the principal of a school, the director of an office, the head of the bureau.
    head_name: Mapped[str | None] = mapped_column(String(32))
    phone: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    parent: Mapped[Unit | None] = relationship(remote_side=[id], lazy="joined", join_depth=2)

    @property
    def is_direct_school(self) -> bool:
        """区直学校: a school directly under the bureau, not through a 街道教育办."""
        return self.type == UnitType.SCHOOL and self.parent is not None and self.parent.type == UnitType.BUREAU

    @property
    def cert_key(self) -> str:
        """The unit's key in the PKI store."""
        return "unit-" + self.code.lower()
