"""Realistic rosters for tests and benchmarks: valid rows, and rows with planted errors."""

from __future__ import annotations

import io
import random
from collections.abc import Sequence

from openpyxl import Workbook
from stdnum.cn import ric

HEADER = (
    "学校代码",
    "学生姓名",
    "身份证号",
    "性别",
    "出生日期",
    "学籍号",
    "年级",
    "班级",
    "家庭住址",
    "监护人姓名",
    "监护人关系",
    "监护人电话",
)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "子涵欣怡梓轩浩宇雨桐一诺思远佳怡俊杰晨曦嘉怡语桐明轩若曦天佑雅琪文博梦瑶志强秀英建华丽娟海燕国庆红梅宇航欣然诗涵梓萱浩然"


def resident_id(n: int, born: str = "20180415", female: bool | None = None) -> str:
    """A valid 身份证号 for Jinan's Licheng district (370112) with a serial from ``n``."""
    serial = n % 1000
    if female is not None and (serial % 2 == 1) == female:
        serial = (serial + 1) % 1000
    body = f"370112{born}{serial:03d}"
    return body + ric.calc_check_digit(body + "0")


def rows(count: int, schools: Sequence[str], seed: int = 7) -> list[tuple[str, ...]]:
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        school = schools[i % len(schools)]
        female = rnd.random() < 0.5
        born = f"2018{rnd.randint(1, 12):02d}{rnd.randint(1, 28):02d}"
        id_number = resident_id(i + 1000 * (i // 1000), born, female)
        name = SURNAMES[i % len(SURNAMES)] + GIVEN[rnd.randrange(len(GIVEN))] + GIVEN[rnd.randrange(len(GIVEN))]
        klass = f"{rnd.randint(1, 6)}班"
        guardian = name[0] + "建国" if rnd.random() < 0.5 else name[0] + "秀兰"
        out.append(
            (
                school,
                name,
                id_number,
                "女" if female else "男",
                f"{born[:4]}-{born[4:6]}-{born[6:]}",
                "G" + id_number,
                "一年级",
                klass,
                "济南市历城区王舍人街道",
                guardian,
                rnd.choice(["父亲", "母亲"]),
                f"13{rnd.randint(5, 9)}{rnd.randint(10_000_000, 99_999_999)}",
            )
        )
    # make every 身份证号 unique (serial collisions across the random birthdays are possible)
    seen: set[str] = set()
    fixed = []
    for n, r in enumerate(out):
        id_number = r[2]
        k = 0
        while id_number in seen:
            k += 1
            body = id_number[:14] + f"{(int(id_number[14:17]) + 2 * k) % 1000:03d}"
            id_number = body + ric.calc_check_digit(body + "0")
        seen.add(id_number)
        fixed.append((*r[:2], id_number, *r[3:5], "G" + id_number, *r[6:]))
        del n
    return fixed


def xlsx(data: Sequence[Sequence[object]], header: Sequence[str] = HEADER) -> bytes:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet()
    ws.append(list(header))
    for r in data:
        ws.append(list(r))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
