"""Whose rules: the notices the product's defaults were written from, and each bureau's own basis.

The defaults of the deadline rules and the 巩固率 target come from real notices of several places
(``reference/``): 历城区 and 枣庄市 (山东), 谯城区 (安徽), 睢阳区 (河南), a county implementation plan.
Another county's notice is never a bureau's legal basis. So a rule row names the source the bureau
itself entered (its own notice and article); until it does, the rule shows the seed notice as a
reference, marked as another place's and chosen nearest the bureau's region first, for the bureau to
replace with its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeedNotice:
    """A notice the defaults were written from."""

    short: str
    title: str
    issuer: str
    #: Province and city, as the region a bureau names matches them ("山东省济南市").
    region: str
    number: str = ""


SEED_NOTICES = {
    "licheng": SeedNotice(
        "历城区通知",
        "关于持续做好义务教育控辍保学工作的通知（2024年9月25日）",
        "济南市历城区教育和体育局",
        "山东省济南市",
    ),
    "zaozhuang": SeedNotice(
        "枣庄市通知",
        "关于进一步做好义务教育控辍保学工作的通知",
        "枣庄市教育局等5部门",
        "山东省枣庄市",
        "枣教字〔2020〕16号",
    ),
    "qiaocheng": SeedNotice(
        "谯城区通知",
        "关于进一步做好义务教育控辍保学工作的通知",
        "亳州市谯城区人民政府办公室",
        "安徽省亳州市",
        "谯政办秘〔2024〕5号",
    ),
    "suiyang": SeedNotice("睢阳区通知", "义务教育控辍保学工作方案", "商丘市睢阳区教育体育局", "河南省商丘市"),
    "county_plan": SeedNotice("县实施方案", "义务教育控辍保学实施方案（某县）", "某县人民政府", ""),
}


@dataclass(frozen=True)
class Citation:
    notice: str
    article: str

    @property
    def seed(self) -> SeedNotice:
        return SEED_NOTICES[self.notice]

    def text(self) -> str:
        return f"{self.seed.short} {self.article}".strip()


#: For each rule (and the 巩固率 target), the passages of the seed notices it was written from.
EXAMPLES: dict[str, tuple[Citation, ...]] = {
    "survey": (Citation("county_plan", "二.(三).2"),),
    "info_report": (Citation("county_plan", "二.(三).2"),),
    "unregistered": (Citation("qiaocheng", "五"),),
    "work_plan": (Citation("county_plan", "二.(三).3"),),
    # 一旦发现……要立即核实情况
    "confirm": (Citation("licheng", "二.(一)"), Citation("zaozhuang", "三.(四)")),
    # 确实辍学的学生……立即予以劝返 / 第一时间下达复学通知书
    "return_notice": (Citation("licheng", "二.(二)"), Citation("zaozhuang", "三.(一)")),
    "joint_persuasion": (Citation("suiyang", "三"),),
    "deadline_notice": (Citation("county_plan", "二.(三).3"),),
    "judicial": (Citation("county_plan", "二.(三).3"),),
    "persuasion": (Citation("county_plan", "二.(三).5"),),
    "home_teaching": (Citation("county_plan", "二.(三).4"),),
    "weekly_report": (Citation("zaozhuang", "三.(四)(五)"),),
    # 台账每月要维护更新一次 / 月报表
    "monthly_report": (Citation("licheng", "三"), Citation("suiyang", "四")),
    "quarterly_review": (Citation("suiyang", "四"),),
    "consolidation_target": (Citation("qiaocheng", "一"),),
}

#: The 巩固率 target a bureau follows until it sets its own (谯城区: 不低于99%).
DEFAULT_TARGET = 0.99


def examples(key: str, region: str = "") -> list[Citation]:
    """The seed passages behind a rule, nearest the bureau's region first (same city, then province)."""
    province = region[:3]

    def nearness(c: Citation) -> int:
        seed_region = c.seed.region
        if region and seed_region and region.startswith(seed_region):
            return 0
        if province and seed_region.startswith(province):
            return 1
        return 2

    return sorted(EXAMPLES.get(key, ()), key=nearness)


def reference(key: str, region: str = "") -> str:
    """How a rule without a source of the bureau's own shows where its default came from: as a
    reference, naming the place, never as the bureau's basis."""
    found = examples(key, region)
    if not found:
        return ""
    c = found[0]
    where = c.seed.region or "外地"
    return f"参考{where}：{c.text()}（非本局文件，请填写本局依据）"


#: Every citation text the seeds hold: a stored source equal to one of them was copied from a
#: default, not entered by the bureau.
SEED_TEXTS = frozenset(c.text() for cs in EXAMPLES.values() for c in cs) | {
    "县实施方案 二.(三).2",
    "谯城区通知 五",
    "县实施方案 二.(三).3",
    "枣庄市通知 三.(四)",
    "枣庄市通知 三.(一)",
    "睢阳区通知 三",
    "县实施方案 二.(三).5",
    "县实施方案 二.(三).4",
    "枣庄市通知 三.(四)(五)",
    "睢阳区通知 四",
}
