"""Bad input gives a clear Chinese message with a stable code, and nothing reaches the archive."""

from __future__ import annotations

import io
import shutil
import threading
import time
from pathlib import Path

import pytest
from docx import Document

from service.documents.convert import Converter, ConverterConfig
from service.documents.errors import (
    ConversionTimeout,
    ConverterCrashed,
    FieldsInvalid,
    TemplateInvalid,
    TemplateUnsafe,
)
from service.documents.pipeline import DocumentEngine, IssueRequest
from service.documents.registry import KINDS, example_fields
from service.errors import DocsignError
from service.settings import PROJECT_ROOT, Settings
from service.storage.local import LocalArchive


def archived(archive: LocalArchive) -> list[str]:
    return list(archive)


def notice_fields(settings: Settings) -> dict[str, object]:
    return example_fields(KINDS["enrollment_notice"], settings.schemas_dir)


def test_missing_field(isolated_engine: DocumentEngine, settings: Settings, fresh_archive: LocalArchive) -> None:
    fields = notice_fields(settings)
    del fields["guardian_name"]
    with pytest.raises(FieldsInvalid) as exc:
        isolated_engine.issue(IssueRequest("enrollment_notice", fields))
    assert exc.value.code == "FIELDS_INVALID"
    assert exc.value.details["errors"] == [
        {"field": "guardian_name", "title": "父母或法定监护人姓名", "message": "必须填写"}
    ]
    assert archived(fresh_archive) == []


def test_invalid_resident_id(isolated_engine: DocumentEngine, settings: Settings, fresh_archive: LocalArchive) -> None:
    fields = example_fields(KINDS["dropout_register"], settings.schemas_dir)
    fields["student_id_number"] = "370112201203070014"  # last digit wrong
    with pytest.raises(FieldsInvalid) as exc:
        isolated_engine.issue(IssueRequest("dropout_register", fields))
    (error,) = exc.value.details["errors"]
    assert error["field"] == "student_id_number"
    assert "校验码不正确" in error["message"]
    assert "身份证号" in exc.value.message
    assert archived(fresh_archive) == []


def test_birth_date_and_sex_must_agree_with_the_id(isolated_engine: DocumentEngine, settings: Settings) -> None:
    fields = example_fields(KINDS["dropout_register"], settings.schemas_dir)
    fields["birth_date"] = "2012-03-08"
    fields["sex"] = "女"
    with pytest.raises(FieldsInvalid) as exc:
        isolated_engine.issue(IssueRequest("dropout_register", fields))
    messages = {e["field"]: e["message"] for e in exc.value.details["errors"]}
    assert messages["birth_date"] == "与身份证号中的出生日期（2012年3月7日）不一致"
    assert messages["sex"] == "与身份证号中的性别（男）不一致"


@pytest.mark.parametrize("value", ["2024/08/31", "2024年8月31日", "31-08-2024", "2024-8-31"])
def test_date_in_the_wrong_form(isolated_engine: DocumentEngine, settings: Settings, value: str) -> None:
    fields = notice_fields(settings)
    fields["report_by"] = value
    with pytest.raises(FieldsInvalid) as exc:
        isolated_engine.issue(IssueRequest("enrollment_notice", fields))
    (error,) = exc.value.details["errors"]
    assert error == {
        "field": "report_by",
        "title": "报到截止日期",
        "message": "日期应写成 年-月-日 的形式，例如 2024-09-25",
    }


def test_day_that_does_not_exist(isolated_engine: DocumentEngine, settings: Settings) -> None:
    fields = notice_fields(settings)
    fields["issue_date"] = "2024-02-30"
    with pytest.raises(FieldsInvalid) as exc:
        isolated_engine.issue(IssueRequest("enrollment_notice", fields))
    assert exc.value.details["errors"][0]["message"] == "这一天不存在，请核对日期"


def test_phone_and_unknown_field(isolated_engine: DocumentEngine, settings: Settings) -> None:
    fields = notice_fields(settings)
    fields["contact_phone"] = "8816128"
    fields["guardian_nmae"] = "张三"
    with pytest.raises(FieldsInvalid) as exc:
        isolated_engine.issue(IssueRequest("enrollment_notice", fields))
    by_field = {e["field"]: e["message"] for e in exc.value.details["errors"]}
    assert "手机号为11位数字" in by_field["contact_phone"]
    assert by_field["guardian_nmae"] == "模板中没有这个字段，请删除或检查拼写"


def test_unknown_template(isolated_engine: DocumentEngine) -> None:
    with pytest.raises(DocsignError) as exc:
        isolated_engine.issue(IssueRequest("admission_letter", {}))
    assert exc.value.code == "UNKNOWN_TEMPLATE" and "enrollment_notice" in exc.value.message


def _templates_with(tmp_path: Path, key: str, data: bytes) -> Path:
    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    (templates / f"{key}.docx").write_bytes(data)
    return templates


def _docx_with(text: str) -> bytes:
    doc = Document()
    doc.add_paragraph(text)
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    "expression",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ guardian_name.__class__.__base__.__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    ],
)
def test_template_that_tries_to_run_code(
    tmp_path: Path, settings: Settings, pki: object, converter: Converter, fresh_archive: LocalArchive, expression: str
) -> None:
    templates = _templates_with(tmp_path, "enrollment_notice", _docx_with(f"通知 {expression}"))
    engine = DocumentEngine(
        settings.model_copy(update={"templates_dir": templates}),
        pki=pki,  # type: ignore[arg-type]
        converter=converter,
        archive=fresh_archive,
    )
    with pytest.raises((TemplateUnsafe, DocsignError)) as exc:
        engine.issue(IssueRequest("enrollment_notice", notice_fields(settings)))
    assert exc.value.code in ("TEMPLATE_UNSAFE", "TEMPLATE_RENDER_FAILED")
    assert "模板" in exc.value.message
    assert archived(fresh_archive) == []


def test_dunder_access_is_refused_as_unsafe(
    tmp_path: Path, settings: Settings, pki: object, converter: Converter, fresh_archive: LocalArchive
) -> None:
    templates = _templates_with(tmp_path, "enrollment_notice", _docx_with("{{ ''.__class__.__mro__ }}"))
    engine = DocumentEngine(
        settings.model_copy(update={"templates_dir": templates}),
        pki=pki,  # type: ignore[arg-type]
        converter=converter,
        archive=fresh_archive,
    )
    with pytest.raises(TemplateUnsafe) as exc:
        engine.issue(IssueRequest("enrollment_notice", notice_fields(settings)))
    assert exc.value.code == "TEMPLATE_UNSAFE"
    assert "不允许的表达式" in exc.value.message


@pytest.mark.parametrize("data", [b"not a zip at all", b"PK\x03\x04" + b"\x00" * 200, _docx_with("ok")[:900]])
def test_corrupt_docx(
    tmp_path: Path, settings: Settings, pki: object, converter: Converter, fresh_archive: LocalArchive, data: bytes
) -> None:
    templates = _templates_with(tmp_path, "enrollment_notice", data)
    engine = DocumentEngine(
        settings.model_copy(update={"templates_dir": templates}),
        pki=pki,  # type: ignore[arg-type]
        converter=converter,
        archive=fresh_archive,
    )
    with pytest.raises(TemplateInvalid) as exc:
        engine.issue(IssueRequest("enrollment_notice", notice_fields(settings)))
    assert exc.value.code == "TEMPLATE_INVALID"
    assert ".docx" in exc.value.message
    assert archived(fresh_archive) == []


@pytest.fixture()
def own_converter(settings: Settings) -> Converter:
    c = Converter(ConverterConfig(settings.soffice_path, settings.uno_python, timeout=120))
    yield c  # type: ignore[misc]
    c.close()


def _big_docx(engine: DocumentEngine, settings: Settings, copies: int) -> bytes:
    kind = KINDS["responsibility_office"]
    template = engine.template(kind)
    from service.documents.registry import load_schema
    from service.documents.render import complete_context

    body = template.render_body(
        complete_context(load_schema(kind, settings.schemas_dir), example_fields(kind, settings.schemas_dir))
    )
    return template.compose([body] * copies)


def test_libreoffice_killed_mid_conversion(
    own_converter: Converter, isolated_engine: DocumentEngine, settings: Settings, fresh_archive: LocalArchive
) -> None:
    import os
    import signal

    own_converter.warm_up()
    (pid,) = own_converter.office_pids()
    docx = _big_docx(isolated_engine, settings, 60)

    def kill_soon() -> None:
        time.sleep(0.5)
        os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_soon)
    killer.start()
    with pytest.raises(ConverterCrashed) as exc:
        own_converter.convert(docx)
    killer.join()
    assert exc.value.code == "CONVERTER_CRASHED"
    assert "LibreOffice" in exc.value.message and "重新提交" in exc.value.message
    # the next conversion gets a fresh soffice
    pdf = own_converter.convert(_big_docx(isolated_engine, settings, 1))
    assert pdf.startswith(b"%PDF")
    assert own_converter.office_pids() != [pid]
    assert archived(fresh_archive) == []


def test_conversion_timeout_restarts_soffice(
    own_converter: Converter, isolated_engine: DocumentEngine, settings: Settings
) -> None:
    own_converter.warm_up()
    (pid,) = own_converter.office_pids()
    with pytest.raises(ConversionTimeout) as exc:
        own_converter.convert(_big_docx(isolated_engine, settings, 60), timeout=0.3)
    assert exc.value.code == "CONVERSION_TIMEOUT" and "超过" in exc.value.message
    with pytest.raises(ProcessLookupError):
        os_kill_check(pid)
    assert own_converter.convert(_big_docx(isolated_engine, settings, 1)).startswith(b"%PDF")


def os_kill_check(pid: int) -> None:
    import os

    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise
        time.sleep(0.1)
