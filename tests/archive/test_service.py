from __future__ import annotations

from service.archive.service import bundle_path, mask_name, public_info


def test_names_are_masked_for_the_public_page() -> None:
    assert mask_name("张三") == "张*"
    assert mask_name("张小雨") == "张*雨"
    assert mask_name("欧阳晓娜") == "欧**娜"
    assert mask_name("李") == "*"


def test_public_information_never_carries_an_id_number() -> None:
    fields = {
        "guardian_name": "张建国",
        "student_name": "张小雨",
        "student_id_number": "370112201804150027",
        "school_name": "济南市历城区实验小学",
        "report_by": "2024-08-31",
        "issuer_name": "济南市历城区教育和体育局",
        "issue_date": "2024-08-10",
        "contact_phone": "0531-88161285",
    }
    info = public_info("enrollment_notice", fields)
    assert info == {
        "kind": "enrollment_notice",
        "title": "义务教育入学通知书",
        "issuer": "济南市历城区教育和体育局",
        "date": "2024-08-10",
        "school_name": "济南市历城区实验小学",
        "report_by": "2024-08-31",
        "subject": "张*雨",
        "guardian": "张*国",
    }
    assert "370112" not in str(info)


def test_bundle_paths_are_safe() -> None:
    assert bundle_path("历城区/教育办", "石河小学:承诺书.pdf") == "历城区_教育办/石河小学_承诺书.pdf"
