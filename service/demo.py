"""A small demo district modelled on the Licheng notice, for trying the service out.

One bureau, two 街道教育办 with three schools each, two 区直学校, and an account for every role
(the three administrators too).
All demo accounts share one password (printed by ``docsign demo``); they are for a demo only.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.accounts.service import create_user
from service.ledgers.deadlines import DEFAULT_RULES
from service.ledgers.models import BureauBasis, DeadlineRule
from service.units.models import Unit
from service.units.service import SheetRow, import_units

DEMO_PASSWORD = "kcbx-demo-2024"

DEMO_UNITS = [
    # code, name, type, parent, head
    ("LCJT", "济南市历城区教育和体育局", "教体局", "", "刘建华"),
    ("WSR", "历城区王舍人街道教育办公室", "街道教育办", "LCJT", "李志强"),
    ("WSR-SH", "历城区王舍人街道石河小学", "学校", "WSR", "赵明"),
    ("WSR-XD", "历城区王舍人街道辛甸小学", "学校", "WSR", "钱红"),
    ("WSR-ZX", "历城区王舍人街道中学", "学校", "WSR", "孙建国"),
    ("HJL", "历城区洪家楼街道教育办公室", "街道教育办", "LCJT", "周海燕"),
    ("HJL-XX", "历城区洪家楼小学", "学校", "HJL", "吴桂兰"),
    ("HJL-BX", "历城区洪家楼北路小学", "学校", "HJL", "郑伟"),
    ("HJL-ZX", "历城区洪家楼中学", "学校", "HJL", "王丽娟"),
    ("SYXX", "济南市历城区实验小学", "学校", "LCJT", "王秀兰"),
    ("DEZX", "济南市历城区第二中学", "学校", "LCJT", "陈国庆"),
]


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: str
    unit: str
    name: str


def load_demo(session: Session) -> list[DemoAccount] | None:
    """Create the demo district and its accounts; None if units already exist (nothing is changed)."""
    if session.scalar(select(Unit).limit(1)) is not None:
        return None
    rows = [
        SheetRow(i + 2, {"code": c, "name": n, "type": t, "parent": p, "head_name": h})
        for i, (c, n, t, p, h) in enumerate(DEMO_UNITS)
    ]
    result = import_units(session, rows)
    assert not result.errors, result.errors
    units = {u.code: u for u in session.scalars(select(Unit))}
    accounts: list[DemoAccount] = []

    def add(username: str, role: Role, code: str, name: str) -> None:
        create_user(
            session, username=username, password=DEMO_PASSWORD, display_name=name, role=role.value, unit=units[code]
        )
        accounts.append(DemoAccount(username, role.value, units[code].name, name))

    add("bureau", Role.BUREAU, "LCJT", "韩玮玮")
    # the three administrators (三员), each a different person
    add("sysadmin", Role.SYSTEM_ADMIN, "LCJT", "系统管理员高峰")
    add("secadmin", Role.SECURITY_ADMIN, "LCJT", "安全管理员孟琳")
    add("auditor", Role.AUDIT_ADMIN, "LCJT", "审计管理员薛静")
    for code, _, kind, _, head in DEMO_UNITS:
        if kind == "街道教育办":
            add(f"{code.lower()}-staff", Role.OFFICE, code, f"{units[code].name[3:7]}办事员")
            add(f"{code.lower()}-head", Role.SIGNER, code, head)
        elif kind == "学校":
            add(f"{code.lower()}-head", Role.SIGNER, code, head)
    _demo_basis(session, units["LCJT"])
    session.flush()
    return accounts


#: The demo bureau's own notice (reference/licheng-2024-notice.txt) and the rules it rests on.
DEMO_NOTICE = "济南市历城区教育和体育局《关于持续做好义务教育控辍保学工作的通知》（2024年9月25日）"
DEMO_SOURCES = {
    "confirm": "历城区通知 二.(一)",  # 一旦发现……要立即核实情况
    "return_notice": "历城区通知 二.(二)",  # 确实辍学的学生……立即予以劝返
    "monthly_report": "历城区通知 三",  # 台账每月要维护更新一次
}


def _demo_basis(session: Session, bureau: Unit) -> None:
    """The demo district cites its own notice: its region, its 零流失 target, and the rules that
    notice sets; the others show the seed notices as other places' references."""
    session.add(
        BureauBasis(
            bureau_id=bureau.id,
            region="山东省济南市",
            notice=DEMO_NOTICE,
            target=1.0,  # 确保我区义务教育阶段在校生零流失
            target_source="历城区通知 二.(四)",
            updated_by="演示数据",
        )
    )
    for d in DEFAULT_RULES:
        if d.key in DEMO_SOURCES:
            session.add(
                DeadlineRule(
                    bureau_id=bureau.id,
                    key=d.key,
                    title=d.title,
                    source=DEMO_SOURCES[d.key],
                    anchor=d.anchor,
                    days=d.days,
                    lead_days=d.lead_days,
                    active=True,
                    updated_by="演示数据",
                )
            )
