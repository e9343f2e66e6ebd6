"""The ``docsign`` command line: a thin layer over the pipeline (``documents/pipeline.py``).

Errors are printed in Chinese with their stable code (``错误 [FIELDS_INVALID] ...``), never as a
stack trace. Exit status: 0 success (for ``verify``: the document is genuine), 1 ``verify`` found
the document not genuine, 2 bad input or a failure the message explains.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import zoneinfo
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from service import logs
from service.archive.models import Document
from service.archive.tasks import Recheck, TimestampArchive
from service.audit.service import Actor, record
from service.container import Services
from service.crypto import keyring_for
from service.documents.codes import display_code
from service.documents.pipeline import DocumentEngine, IssuedDocument, IssueRequest, read_fields_file
from service.documents.registry import KINDS, example_fields, get_kind, load_schema
from service.errors import DocsignError, InvalidInput
from service.notify.channels import CHANNEL_TITLES
from service.notify.errors import DeliveryFailed
from service.notify.models import STATUS_TITLES, Delivery
from service.retention.service import RULE_TITLES
from service.settings import PASSPHRASE_BITS, Settings, get_settings, private_dir, strength_bits
from service.storage import open_store
from service.storage.base import STORE_NAMES
from service.storage.derived import DerivedFiles
from service.storage.local import LocalArchive

app = typer.Typer(add_completion=False, no_args_is_help=True, help="控辍保学文书服务：填充、签章、验真。")
pki_app = typer.Typer(no_args_is_help=True, help="证书管理：签发、导入、吊销单位签章证书。")
archive_app = typer.Typer(no_args_is_help=True, help="档案：存档文书的长期验证。")
app.add_typer(pki_app, name="pki")
app.add_typer(archive_app, name="archive")

#: ``docsign --demo <command>``: any command on the demo's data, in development (see ``_settings``).
_DEMO = False


@app.callback()
def _options(
    demo: Annotated[
        bool, typer.Option("--demo", help="在演示数据上运行（开发环境，与 docsign serve --demo 相同）")
    ] = False,
) -> None:
    global _DEMO
    _DEMO = demo


out = Console()
err = Console(stderr=True)

STAGE_TEXT = {"render": "填充模板", "convert": "转换为 PDF", "sign": "盖章签名", "done": "完成"}


def _configure_logging() -> None:
    """One-shot commands: short text lines for the person at the terminal (redacted as the
    services' JSON lines are: ``service.logs``)."""
    logs.configure(json_lines=False, level=logging.WARNING)


def _fail(exc: DocsignError, *, list_errors: bool = True) -> typer.Exit:
    err.print(f"[bold red]错误[/] [{exc.code}] {exc.message}", highlight=False)
    details = exc.details if isinstance(exc.details, dict) else {}
    if list_errors:
        for e in details.get("errors", [])[:50]:
            err.print(f"  - {error_line(e)}", highlight=False)
    return typer.Exit(2)


def error_line(e: dict[str, Any]) -> str:
    """One error of an error's details, saying where only what is known: the document (第N份) or the
    sheet's row and student, the field or column; then what to do."""
    where = []
    if isinstance(e.get("index"), int):
        where.append(f"第{e['index'] + 1}份")
    if e.get("row") is not None:
        where.append(f"第{e['row']}行")
    if e.get("student"):
        where.append(str(e["student"]))
    title, name = e.get("title") or e.get("column"), e.get("field")
    if title and name and title != name:
        where.append(f"{title}（{name}）")
    elif title or name:
        where.append(str(title or name))
    message = str(e.get("message") or "")
    return f"{' '.join(where)}：{message}" if where else message


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except DocsignError as exc:
        raise _fail(exc) from None
    except OSError as exc:
        where = f"：{exc.filename}" if exc.filename else ""
        raise _fail(InvalidInput(f"无法读写文件{where}（{exc.strerror or exc}）。请检查路径和权限。")) from None
    except KeyboardInterrupt:
        err.print("已取消。")
        raise typer.Exit(130) from None


def _settings(demo: bool = False, check: bool = True) -> Settings:
    """The settings of this command. Production (the default) refuses development keys, missing
    secrets and placeholders (``check=False`` for commands that hold no secret, like ``verify``);
    ``demo`` runs in development, which only an explicit
    DOCSIGN_ENVIRONMENT=production forbids."""
    settings = get_settings()
    if demo or _DEMO:
        if settings.production and "environment" in settings.model_fields_set:
            raise InvalidInput(
                "DOCSIGN_ENVIRONMENT=production 时不能载入演示区县（演示账号的密码是公开的）。"
                "试用请去掉该设置，或换一个数据目录。"
            )
        settings = settings.model_copy(update={"environment": "development"})
    if check:
        settings.check_ready()
    return settings


#: How the command line appears in the audit log.
OPERATOR = "命令行"


@contextmanager
def _services() -> Iterator[Services]:
    """The service's use cases for one command: the same database, archive and keys the server
    uses, the schema up to date."""
    services = Services.build(_settings())
    try:
        services.prepare()
        yield services
    finally:
        services.close()


def _bar() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


#: The passphrase of an exported root key file: an option, its environment variable, or asked for.
RootKeyPassphrase = Annotated[
    str | None,
    typer.Option(
        "--root-key-passphrase",
        envvar="DOCSIGN_ROOT_KEY_PASSPHRASE",
        help="根证书私钥文件的口令（也可用环境变量 DOCSIGN_ROOT_KEY_PASSPHRASE；不给时提示输入）",
        show_default=False,
    ),
]


def _root_key_passphrase(given: str | None, *, new: bool) -> str:
    passphrase: str = given or typer.prompt("根证书私钥文件的口令", hide_input=True, confirmation_prompt=new)
    if new:
        _strong_enough(passphrase, "根证书私钥文件的口令")
    return passphrase


def _strong_enough(passphrase: str, what: str) -> None:
    """A new passphrase is refused when it is easy to guess, whatever its length (a repeated word,
    a run of digits)."""
    if (bits := strength_bits(passphrase)) < PASSPHRASE_BITS:
        raise InvalidInput(
            f"{what}太容易猜到：估计约 {bits:.0f} 位，至少需要 {PASSPHRASE_BITS} 位"
            "（例如 16 个以上随机字母数字，或 6 个以上随机词语）。"
        )


def _unlock_root(pki: Any, root_key: Path | None, passphrase: str | None) -> None:
    """Hand the exported root key in, when the command was given one."""
    if root_key is not None:
        pki.unlock_root(_read_file(root_key), _root_key_passphrase(passphrase, new=False))


@app.command()
def init(
    demo: Annotated[bool, typer.Option("--demo", help="为试用创建（开发环境，开发用口令）")] = False,
    export_root_key: Annotated[
        Path | None,
        typer.Option(
            "--export-root-key",
            help="把根证书私钥加密写入此文件并从 certs/ 删除，由管理员离线保管；之后只有更换签发中心证书"
            "（docsign pki rollover）和每年重新发布根证书吊销列表时需要它",
        ),
    ] = None,
    root_key_passphrase: RootKeyPassphrase = None,
) -> None:
    """创建本地证书中心（根证书、签发证书、时间戳证书、吊销列表）和数据目录。已存在时不覆盖。"""
    with _errors():
        settings = _settings(demo)
        engine = DocumentEngine(settings)
        report = engine.pki.init()
        rewrapped = engine.pki.rewrap_keys()
        if export_root_key is not None:
            if export_root_key.exists():
                raise InvalidInput(f"文件 {export_root_key} 已存在，未导出。请换一个文件名。")
            engine.pki.export_root_key(export_root_key, _root_key_passphrase(root_key_passphrase, new=True))
        for folder in (settings.data_dir, settings.archive_dir, settings.work_dir):
            private_dir(folder)
        keys_made = keyring_for(settings).ensure()
        verb = "已创建" if report.created else "已存在，未改动"
        out.print(f"本地证书中心{verb}：{report.certs_dir}")
        out.print(f"根证书：{report.root_subject}")
        out.print(f"根证书 SHA-256 指纹：{report.root_fingerprint}", soft_wrap=True)
        out.print(f"归档目录：{settings.archive_dir}")
        out.print(f"加密密钥{'已创建' if keys_made else '已存在，未改动'}：{settings.keys_folder}（请与数据分开备份）")
        for name in rewrapped:
            out.print(f"已按新的口令派生强度重新加密私钥文件：{name}", highlight=False)
        if export_root_key is not None:
            out.print(
                f"根证书私钥已导出到 {export_root_key}，并已从 {report.certs_dir} 删除：请离线保管该文件和它的口令；"
                "更换签发中心证书（docsign pki rollover --root-key 文件）时需要它。",
                highlight=False,
            )


def _load_requests(
    template: str, data: Path, issuer: str | None, signature: Path | None, seal: Path | None
) -> tuple[list[IssueRequest], bool]:
    get_kind(template)
    payload = read_fields_file(data)
    sig = signature.read_bytes() if signature else None
    seal_bytes = seal.read_bytes() if seal else None
    if isinstance(payload, list):
        if not payload:
            raise InvalidInput("字段文件中的列表是空的，没有要签发的文书。")
        return [IssueRequest(template, item, issuer, None, sig, seal_bytes) for item in payload], True
    return [IssueRequest(template, payload, issuer, None, sig, seal_bytes)], False


@app.command()
def issue(
    template: Annotated[str, typer.Argument(help="模板标识，例如 enrollment_notice；docsign templates 列出全部")],
    data: Annotated[Path, typer.Option("--data", help="字段 JSON 文件：一个对象签发一份，一个列表批量签发")],
    out_path: Annotated[Path, typer.Option("--out", help="输出 PDF 文件；批量签发时为输出目录")],
    issuer: Annotated[str | None, typer.Option("--issuer", help="签发单位的证书标识（默认按落款单位名称生成）")] = None,
    signature: Annotated[Path | None, typer.Option("--signature", help="签发单位负责人的手写签名图片（PNG）")] = None,
    seal: Annotated[
        Path | None, typer.Option("--seal", help="单位公章图片（PNG，透明背景）；不给则按单位名称生成")
    ] = None,
) -> None:
    """填充模板、转换为 PDF、加盖二维码与公章并数字签名，写入归档并登记（可扫码验真）。"""
    from service.archive.service import RecordAs
    from service.units import repository as units_repository
    from service.units.models import Unit

    with _errors():
        requests, batch = _load_requests(template, data, issuer, signature, seal)
        kind = get_kind(template)
        with _services() as services, services.db.session() as session:
            services.engine.check(requests)  # every document valid before any is issued
            units: dict[str, Unit | None] = {}
            for r in requests:
                name = str(r.fields.get(kind.issuer.name_field, ""))
                if name not in units:
                    units[name] = units_repository.by_name(session, name)

            def record_as(r: IssueRequest) -> RecordAs:
                return RecordAs(issuer=units[str(r.fields.get(kind.issuer.name_field, ""))])

            issued: list[tuple[IssuedDocument, Document]] = []

            def on_recorded(group: list[tuple[IssuedDocument, Document]]) -> None:
                for document, row in group:  # what the API writes for each document it issues
                    record(
                        session,
                        Actor(None, OPERATOR, row.issuer_unit_id),
                        "document.issue",
                        "document",
                        row.id,
                        services.clock.now(),
                        kind=row.kind,
                        sha256=row.current_sha256,
                    )
                    issued.append((document, row))

            with _bar() as bar:
                task = bar.add_task("签发", total=len(requests))
                services.archive.issue_batch(
                    session,
                    ((r, record_as(r)) for r in requests),
                    total=len(requests),
                    checkpoint=session.commit,
                    on_recorded=on_recorded,
                    progress=lambda done: bar.update(task, completed=done),
                )
            session.commit()
        if batch:
            out_path.mkdir(parents=True, exist_ok=True)
            table = Table("文件", "验证码", "SHA-256")
            for i, (document, _) in enumerate(issued, 1):
                path = out_path / f"{i:05d}-{document.kind}-{document.code[:8]}.pdf"
                path.write_bytes(document.pdf)
                table.add_row(str(path), display_code(document.code), document.sha256[:16] + "…")
            out.print(table)
            out.print(f"已签发 {len(issued)} 份《{kind.title}》，已写入 {out_path}")
        else:
            document, row = issued[0]
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_bytes(document.pdf)
            out.print(f"已签发《{kind.title}》：{out_path}（{row.pages} 页）")
            out.print(f"验证码：{display_code(document.code)}")
            out.print(f"验证网址：{document.url}")
            out.print(f"SHA-256：{document.sha256}")


@app.command()
def sign(
    pdf: Annotated[Path, typer.Argument(help="要签署的 PDF")],
    unit: Annotated[str, typer.Option("--unit", help="签署单位的证书标识")],
    out_path: Annotated[Path, typer.Option("--out", help="输出 PDF 文件")],
    name: Annotated[str | None, typer.Option("--name", help="单位名称（该单位还没有证书时用来签发）")] = None,
    field: Annotated[str | None, typer.Option("--field", help="签署位置（默认为第一个待签位置）")] = None,
    signature: Annotated[Path | None, typer.Option("--signature", help="负责人手写签名图片（PNG）")] = None,
    seal: Annotated[Path | None, typer.Option("--seal", help="单位公章图片（PNG）")] = None,
) -> None:
    """以单位（校长、教育办主任）的身份在已签发的文书上签名盖章；本机档案中的文书同时登记新版本。"""
    from service.units import repository as units_repository

    with _errors():
        data = _read_file(pdf)
        sig = signature.read_bytes() if signature else None
        seal_bytes = seal.read_bytes() if seal else None
        with _services() as services, services.db.session() as session:
            if name:
                services.pki.ensure_unit(unit, name)
            creds = services.pki.unit(unit)
            doc = services.archive.current(session, data)
            recorded = doc is not None
            if doc is None:
                signed, digest = services.engine.sign_as(
                    data, unit_key=unit, field_name=field, signature_image=sig, seal_image=seal_bytes, store=False
                )
            else:
                member = units_repository.by_name(session, creds.name)
                result = services.archive.sign(
                    session,
                    doc,
                    Actor(None, OPERATOR, member.id if member else None),
                    key=unit,
                    name=creds.name,
                    unit=member,
                    signature_png=sig,
                    seal_png=seal_bytes,
                    field_name=field,
                )
                session.commit()
                signed, digest = result.pdf, result.version.sha256
        out_path.write_bytes(signed)
        out.print(f"已签署：{out_path}")
        out.print(f"SHA-256：{digest}")
        if not recorded:
            out.print("该文件不是本机档案中文书的最新版本：已签署，但没有登记到档案。", highlight=False)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"找不到文件 {path}。") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path} 是目录，不是文件。") from None


@app.command()
def verify(
    pdf: Annotated[Path, typer.Argument(help="要验证的 PDF")],
    as_json: Annotated[bool, typer.Option("--json", help="以 JSON 输出结果")] = False,
) -> None:
    """验证 PDF 的每个签名：是否完整、可信，签署后是否被改动。真实有效时退出码为 0。"""
    with _errors():
        data = _read_file(pdf)
        engine = DocumentEngine(_settings(check=False))
        report = engine.verify(data)
    if as_json:
        out.print_json(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        verdict = "[bold green]真实有效[/]" if report.genuine else "[bold red]不是真实有效的文书[/]"
        out.print(f"{pdf}：{verdict}")
        out.print(f"SHA-256：{report.sha256}")
        for n, s in enumerate(report.signatures, 1):
            when = s.signing_time.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z") if s.signing_time else "—"
            mark = "[green]✓[/]" if s.ok else "[red]✗[/]"
            kind = {"certification": "认证签名", "document_timestamp": "文档时间戳（长期验证）"}.get(s.kind, "签名")
            out.print(f"{mark} {kind} {n}（{s.field_name}）：{s.signer}", highlight=False)
            out.print(f"    签署时间：{when}{'（可信时间戳）' if s.timestamped else '（无时间戳）'}", highlight=False)
            out.print(
                f"    完整：{'是' if s.intact and s.valid else '否'}　可信：{'是' if s.trusted else '否'}"
                f"　覆盖：{s.coverage}",
                highlight=False,
            )
            out.print(
                f"    签署后：{s.modification}" + (f"　权限：{s.permissions}" if s.permissions else ""), highlight=False
            )
            if s.evidence:
                out.print(f"    判断依据：{s.evidence}", highlight=False)
        for p in report.all_problems:
            out.print(f"[red]✗[/] [{p.code}] {p.message}", highlight=False)
    raise typer.Exit(0 if report.genuine else 1)


@app.command()
def templates(
    example: Annotated[str | None, typer.Option("--example", help="打印该模板的一份有效字段 JSON，可据此修改")] = None,
) -> None:
    """列出全部文书模板及其字段；--example 打印可直接使用的字段示例。"""
    with _errors():
        settings = _settings(check=False)
        if example:
            kind = get_kind(example)
            sys.stdout.write(
                json.dumps(example_fields(kind, settings.schemas_dir), ensure_ascii=False, indent=2) + "\n"
            )
            return
        for kind in KINDS.values():
            schema = load_schema(kind, settings.schemas_dir)
            required = set(schema.get("required", []))
            table = Table(title=f"{kind.key}　{kind.title}", title_justify="left")
            table.add_column("字段")
            table.add_column("名称")
            table.add_column("类型")
            table.add_column("必填")
            for name, prop in schema["properties"].items():
                table.add_row(name, str(prop.get("title", "")), _type_text(prop), "是" if name in required else "")
            out.print(table)


def _type_text(prop: dict[str, Any]) -> str:
    fmt = {"date": "日期 YYYY-MM-DD", "cn-resident-id": "身份证号", "cn-phone": "电话"}.get(str(prop.get("format")))
    if fmt:
        return fmt
    if "enum" in prop:
        return "／".join(map(str, prop["enum"]))
    return {"string": "文字", "integer": "整数", "number": "数字", "array": "列表", "object": "对象"}.get(
        str(prop.get("type")), str(prop.get("type"))
    )


@pki_app.command("issue-unit")
def pki_issue_unit(
    key: Annotated[str, typer.Argument(help="单位标识，例如 bureau、office-wangsheren")],
    name: Annotated[str, typer.Argument(help="单位全称，与公章上的名称一致")],
    replace: Annotated[bool, typer.Option("--replace", help="已有证书时重新签发")] = False,
    token: Annotated[
        bool, typer.Option("--token", help="在 PKCS#11 令牌中生成私钥（私钥不出令牌；见 DOCSIGN_PKCS11_* 设置）")
    ] = False,
) -> None:
    """为单位签发签章证书（本地证书中心）。"""
    with _errors():
        engine = DocumentEngine(_settings())
        engine.pki.init()
        creds = engine.pki.issue_unit(key, name, replace=replace, in_token=token)
        out.print(
            f"单位「{creds.name}」的签章证书：序列号 {creds.certificate.serial_number:x}，"
            f"有效期至 {creds.certificate.not_valid_after_utc:%Y-%m-%d}"
        )
        out.print(f"私钥位置：{engine.pki.units.key_location(key)}", highlight=False)


@pki_app.command("import")
def pki_import(
    key: Annotated[str, typer.Argument(help="单位标识")],
    p12: Annotated[Path, typer.Argument(help="PKCS#12（.p12/.pfx）证书文件")],
    password: Annotated[str | None, typer.Option("--password", help="证书文件密码", prompt=False)] = None,
    name: Annotated[str | None, typer.Option("--name", help="单位名称（默认取证书的通用名）")] = None,
    token: Annotated[bool, typer.Option("--token", help="把私钥导入 PKCS#11 令牌（不可导出），不写入 certs/")] = False,
) -> None:
    """导入单位自有的 PKCS#12 签章证书。"""
    with _errors():
        engine = DocumentEngine(_settings())
        creds = engine.pki.import_pkcs12(key, _read_file(p12), password, name, to_token=token)
        out.print(f"已导入单位「{creds.name}」的证书：{creds.certificate.subject.rfc4514_string()}")
        out.print(f"私钥位置：{engine.pki.units.key_location(key)}", highlight=False)


@pki_app.command("revoke")
def pki_revoke(
    key: Annotated[str, typer.Argument(help="单位标识")],
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="吊销原因：unspecified（未说明）、key_compromise（私钥泄露）、affiliation_changed（单位信息变更）、"
            "superseded（证书已被替换）、cessation_of_operation（单位停止使用）",
        ),
    ] = "unspecified",
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="私钥泄露开始的时间（北京时间，如 2026-11-20 或 2026-11-20T08:00）；此后的签章一律无效"
        ),
    ] = None,
) -> None:
    """吊销单位的签章证书，并更新吊销列表；该单位文书的验真结论随后重新核对。

    因私钥泄露吊销时，--since 之后签署的文书不再有效；其他原因吊销的，此前签署的文书仍然有效。"""
    from service.pki.errors import RevocationInvalid
    from service.units import repository as units_repository

    with _errors(), _services() as services, services.db.session() as session:
        compromised_since = None
        if since is not None:
            try:
                compromised_since = dt.datetime.fromisoformat(since)
            except ValueError:
                raise RevocationInvalid(f"时间「{since}」无法识别，请写成 2026-11-20 或 2026-11-20T08:00。") from None
            if compromised_since.tzinfo is None:
                compromised_since = compromised_since.replace(tzinfo=zoneinfo.ZoneInfo(services.settings.timezone))
        serial = services.pki.revoke_unit(key, reason, since=compromised_since)
        unit = units_repository.by_cert_key(session, key)
        # Every process that shows verdicts reads them from the record: have them checked again.
        services.jobs.enqueue(session, Recheck(unit_id=unit.id if unit else None))
        session.commit()
        out.print(f"已吊销证书 {int(serial):x}，吊销列表已更新；相关文书的验真结论将由服务重新核对。")


@pki_app.command("status")
def pki_status() -> None:
    """列出根证书、签发中心证书、时间戳证书、吊销列表和各单位签章证书的到期时间与私钥位置（文件、令牌、离线）；90 天内到期的标为「需关注」。"""
    with _errors():
        status = DocumentEngine(_settings()).pki.status()
        table = Table("类别", "名称", "标识", "到期/下次更新", "剩余天数", "自动续期/发布", "提示")
        for i in status.items:
            when = [t.astimezone().strftime("%Y-%m-%d") if t else "—" for t in (i.expires, i.renews_from)]
            note = "，".join(x for x in ("[bold red]需关注[/]" if i.warn else "", i.note) if x)
            table.add_row(i.label, i.name, i.key or "—", when[0], str(i.days_left), when[1], note)
        out.print(table)
        out.print("私钥位置：")
        for i in status.items:
            if i.key_location and not i.revoked:
                out.print(f"  {i.label}「{i.name}」：{i.key_location}", highlight=False, soft_wrap=True)
        out.print(f"共 {len(status.items)} 项，其中需关注 {len(status.warnings)} 项。")


RootKeyFile = Annotated[
    Path | None,
    typer.Option("--root-key", help="离线保管的根证书私钥文件（docsign init --export-root-key 导出的）"),
]


@pki_app.command("refresh")
def pki_refresh(root_key: RootKeyFile = None, root_key_passphrase: RootKeyPassphrase = None) -> None:
    """续期一次：重新发布将到期的吊销列表、为将到期的单位证书续期、按期更换时间戳证书和签发中心证书，并列出所做的事（记入审计日志）。根证书私钥已离线时，用 --root-key 带上它才能更换签发中心证书、重新发布根证书的吊销列表。"""
    from service.archive.tasks import maintain_pki

    with _errors(), _services() as services, services.db.session() as session:
        _unlock_root(services.pki, root_key, root_key_passphrase)
        report = maintain_pki(session, services)
        session.commit()
        for line in report.lines():
            out.print(line, highlight=False)


@pki_app.command("rollover")
def pki_rollover(root_key: RootKeyFile = None, root_key_passphrase: RootKeyPassphrase = None) -> None:
    """立即更换签发中心证书（新的密钥与证书，由根证书签发），随后更换时间戳证书、为各单位换发证书（记入审计日志）。根证书私钥已离线时须用 --root-key 带上它。"""
    from service.archive.tasks import maintain_pki
    from service.pki.errors import RootKeyOffline

    with _errors(), _services() as services, services.db.session() as session:
        _unlock_root(services.pki, root_key, root_key_passphrase)
        if not services.pki.authority.root_available:
            raise RootKeyOffline()
        report = maintain_pki(session, services, replace_issuing=True)
        session.commit()
        for line in report.lines():
            out.print(line, highlight=False)


@archive_app.command("timestamp")
def archive_timestamp() -> None:
    """为保护期将到期的存档文书加盖存档时间戳（长期验证）；服务每天自动执行，此命令立即执行一次。"""
    from service.archive import repository as archive_repository
    from service.audit import repository as audit_repository
    from service.jobs.runner import JobBusy, JobFailed

    def last_ids(session: Any) -> tuple[int, int]:
        return archive_repository.last_version_id(session), audit_repository.last_id(session)

    with _errors(), _services() as services:
        with services.db.session() as session:
            version_before, audit_before = last_ids(session)
            job, _ = services.jobs.enqueue(session, TimestampArchive(), active_key="archive.timestamp")
            session.commit()
        try:
            ended = services.jobs.run_here(job.id)
        except JobBusy:
            raise JobBusy(f"服务正在加盖存档时间戳（后台任务 {job.id}），请等它结束后再试。") from None
        if ended.status != "done":
            raise JobFailed(f"[{ended.error_code}] {ended.error_message}")
        with services.db.session() as session:
            stamped = archive_repository.timestamped_after(session, version_before)
            out.print(f"已检查 {ended.done or 0} 份文书，新加盖存档时间戳 {stamped} 份。")
            notes = audit_repository.events_after(
                session, audit_before, ("archive.timestamp_waits", "document.timestamp_too_late")
            )
            for note in notes:
                out.print(f"需要关注：{note.detail.get('reason', '')}", highlight=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="监听地址")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="端口")] = 8000,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo/--no-demo",
            help="试用：开发环境（开发用口令），没有任何单位时载入演示区县及其公开密码的演示账号；不用于正式服务",
        ),
    ] = False,
) -> None:
    """启动 Web 服务（启动时自动升级数据库结构）。默认为生产环境：缺少密钥、口令或仍是示例值时拒绝启动。"""
    import uvicorn

    from service.app import create_app

    with _errors():
        settings = _settings(demo)
        if demo:
            # the PKI and data folders, as `docsign init --demo` makes them (nothing is overwritten)
            DocumentEngine(settings).pki.init()
            out.print(
                "[bold yellow]演示模式[/]：开发环境，使用开发用口令，演示账号的密码是公开的。"
                "只用于试用，不要在这里登记真实学生的信息。",
                highlight=False,
            )
        _prepare_database(settings, demo=demo)
        out.print(
            f"服务地址：http://{host}:{port}/　验真页面：http://{host}:{port}/v　接口文档：http://{host}:{port}/docs"
        )
        logs.configure(json_lines=True)  # JSON lines with request ids, no codes, tokens, ID or phone numbers
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            log_level="info",
            log_config=None,  # ours, above: uvicorn's loggers go through the same redacting handler
            # uvicorn's access lines show the client too, by the same rule as client_address
            proxy_headers=bool(settings.proxy_networks),
            forwarded_allow_ips=[str(n) for n in settings.proxy_networks] or None,
        )


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", help="工作进程数（默认取 DOCSIGN_CELERY_CONCURRENCY）")
    ] = None,
    beat: Annotated[
        bool, typer.Option("--beat/--no-beat", help="同时运行定时任务（整个集群只能有一个进程带 --beat）")
    ] = False,
    loglevel: Annotated[str, typer.Option("--loglevel", help="日志级别")] = "INFO",
    queues: Annotated[
        str,
        typer.Option(
            "--queues",
            "-Q",
            help="取哪些队列的任务，逗号分隔：batch（批量签发）、upkeep（定时维护）；默认两者轮流取",
        ),
    ] = "batch,upkeep",
) -> None:
    """启动后台任务工作进程（扩展部署：需要设置 DOCSIGN_BROKER_URL）。"""
    from service.jobs.celery_runner import QUEUES, celery_app, serve_with, worker_settings

    with _errors():
        settings = _settings()
        if not settings.scale_out:
            raise InvalidInput(
                "未设置 DOCSIGN_BROKER_URL：单机部署由 docsign serve 自己执行后台任务，无需单独启动工作进程。"
            )
        names = [q.strip() for q in queues.split(",") if q.strip()]
        if not names or any(q not in QUEUES for q in names):
            raise InvalidInput(f"队列「{queues}」无效：应为 batch、upkeep 或 batch,upkeep。")
        services = Services.build(settings)
        try:
            services.prepare()  # the schema and the PKI in place before any process takes work
        finally:
            services.close()
        settings.work_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            "worker",
            f"--concurrency={concurrency or settings.celery_concurrency}",
            "--pool=prefork",
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
            "--queues=" + ",".join(QUEUES[q] for q in names),
        ]
        if beat:
            argv.append("--beat")
        # each pool process builds its own services after the fork, on its first task
        serve_with(lambda: Services.build(worker_settings(settings)))
        logs.configure(json_lines=True, level=getattr(logging, loglevel.upper(), logging.INFO))
        celery_app(settings).worker_main(argv)


def _prepare_database(settings: Settings, demo: bool) -> None:
    from service.db.session import Database
    from service.demo import DEMO_PASSWORD, load_demo

    db = Database(settings)
    try:
        db.migrate()
        if demo:
            with db.session() as session:
                accounts = load_demo(session)
                session.commit()
            if accounts:
                table = Table(
                    "账号",
                    "角色",
                    "单位",
                    "姓名",
                    title=f"已载入演示区县；演示账号的密码都是 {DEMO_PASSWORD}",
                    title_justify="left",
                )
                for a in accounts:
                    table.add_row(a.username, a.role, a.unit, a.name)
                out.print(table)
    finally:
        db.dispose()


@app.command()
def demo() -> None:
    """载入演示区县（一个教体局、两个街道教育办各三所学校、两所区直学校）和各角色的演示账号（开发环境）。"""
    with _errors():
        settings = _settings(demo=True)
        _prepare_database(settings, demo=True)


keys_app = typer.Typer(no_args_is_help=True, help="加密密钥：查看、轮换、停用主密钥；加密旧的归档文件。")
app.add_typer(keys_app, name="keys")


@keys_app.command("status")
def keys_status() -> None:
    """列出主密钥和数据密钥：哪个主密钥在用、各封装了几个数据密钥。"""
    with _errors():
        settings = _settings()
        status = keyring_for(settings).status()
    if not status.masters:
        out.print(f"还没有加密密钥（{status.folder}）：请运行 docsign init。")
        raise typer.Exit(1)
    out.print(f"密钥目录：{status.folder}    新数据的加密算法：{status.cipher}", highlight=False)
    table = Table("主密钥", "创建时间", "状态", "封装的数据密钥")
    for master in status.masters:
        state = "在用" if master.current else ("待停用" if master.wraps == 0 else "轮换未完成")
        table.add_row(master.id, master.created, state, str(master.wraps))
    out.print(table)
    table = Table("数据密钥", "用途", "封装它的主密钥", "创建时间")
    for key in status.data_keys:
        use = "加密新数据" if key.active else ("盲索引" if key.index else "只解密旧数据")
        table.add_row(key.id, use, key.master, key.created)
    out.print(table)
    if status.rotation_unfinished:
        out.print("[bold red]上次轮换未完成[/]：请再次运行 docsign keys rotate。", highlight=False)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """生成新的主密钥，并用它重新封装全部数据密钥（已加密的数据不必重写；中断后再运行会接着完成）。
    运行中的服务不必停止。完成后可用 docsign keys retire 停用旧主密钥。"""
    with _errors():
        keyring = keyring_for(_settings())
        with _bar() as bar:
            task = bar.add_task("重新封装数据密钥", total=None)
            master, count = keyring.rotate(progress=lambda done, total: bar.update(task, completed=done, total=total))
    out.print(f"已轮换：新主密钥 {master}，重新封装了 {count} 个数据密钥。旧主密钥可用 docsign keys retire 停用。")


@keys_app.command("retire")
def keys_retire() -> None:
    """删除不再封装任何数据密钥的旧主密钥（先覆写再删除）。请先确认备份里已有新主密钥。"""
    with _errors():
        retired = keyring_for(_settings()).retire()
    if retired:
        out.print(f"已停用并删除旧主密钥：{'、'.join(retired)}。")
    else:
        out.print("没有可停用的旧主密钥。")


@keys_app.command("encrypt-archive")
def keys_encrypt_archive() -> None:
    """加密启用归档加密之前写入的归档文件（逐个原子替换，中断后再运行会接着完成），并删除未加密的页面图片缓存。"""
    with _errors():
        settings = _settings()
        if not settings.archive_encryption:
            raise InvalidInput("DOCSIGN_ARCHIVE_ENCRYPTION 已关闭：请先开启归档加密。")
        sealed = 0
        for name in STORE_NAMES:
            store = open_store(settings, name)
            if not isinstance(store, LocalArchive):
                out.print(f"{name}：对象存储，由存储端加密（DOCSIGN_S3_SERVER_SIDE_ENCRYPTION），跳过。")
                continue
            with _bar() as bar:
                task = bar.add_task(f"加密 {name}", total=None)

                def shown(done: int, total: int, bar: Progress = bar, task: TaskID = task) -> None:
                    bar.update(task, completed=done, total=total)

                sealed += store.seal_existing(shown)
        dropped = DerivedFiles(settings.work_dir / "pages", keyring_for(settings)).drop_plain()
    out.print(f"已加密 {sealed} 个归档文件，删除了 {dropped} 个未加密的页面图片缓存。")


db_app = typer.Typer(no_args_is_help=True, help="数据库维护。")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """把数据库结构升级到最新版本。"""
    with _errors():
        _prepare_database(_settings(), demo=False)
        out.print("数据库结构已是最新。")


audit_app = typer.Typer(no_args_is_help=True, help="审计日志。")
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify() -> None:
    """逐条核对审计日志的哈希链，并与归档中最近的检查点比对（末尾的记录被整段删除时也能发现）；有问题时退出码为 1。"""
    from service.audit.service import verify_chain

    _verify_log("审计日志", verify_chain)


def _verify_log(title: str, verify: Callable[[Any], Any]) -> None:
    """Check a chained log (the audit or the access log) and both logs against the latest
    checkpoint; exit 1 on any problem."""
    from service.db.session import Database

    with _errors():
        settings = _settings()
        db = Database(settings)
        try:
            db.migrate()  # a database never served has no tables yet (and no entries)
            with db.session() as session:
                report = verify(session)
                checked = _checkpoint_report(settings, session)
        finally:
            db.dispose()
    ok = report.ok and checked.ok
    if ok:
        out.print(f"{title}完整：共 {report.events} 条记录，哈希链无断点。")
    elif report.ok:
        out.print(f"{title}的哈希链完整：共 {report.events} 条记录，无断点。")
    else:
        where = f"第 {report.first_bad_id} 号记录" if report.first_bad_id is not None else ""
        out.print(f"[bold red]{title}被改动[/]：{where}{report.reason}。", highlight=False)
    _print_checkpoint(checked)
    raise typer.Exit(0 if ok else 1)


def _checkpoint_report(settings: Settings, session: Any) -> Any:
    from service.audit.checkpoints import check
    from service.pki.store import Pki

    return check(session, open_store(settings, "checkpoints"), Pki.from_settings(settings))


def _print_checkpoint(checked: Any) -> None:
    if checked.checkpoint is not None:
        at = checked.checkpoint.at.astimezone(dt.timezone(dt.timedelta(hours=8)))
        stamped = checked.checkpoint.stamped_at.astimezone(dt.timezone(dt.timedelta(hours=8)))
        out.print(f"最近的检查点：{at:%Y-%m-%d %H:%M}（时间戳 {stamped:%Y-%m-%d %H:%M:%S}）。", highlight=False)
    else:
        out.print("归档中还没有检查点（服务每天及停止时写入一个）。")
    for problem in checked.problems:
        out.print(f"[bold red]检查点[/]：{problem}。", highlight=False)


access_app = typer.Typer(no_args_is_help=True, help="访问日志：每一次查看学生信息的记录。")
app.add_typer(access_app, name="access")


@access_app.command("verify")
def access_verify() -> None:
    """逐条核对访问日志的哈希链，并与归档中最近的检查点比对；有记录被改动或删除时退出码为 1。"""
    from service.audit.access import verify_access_chain

    _verify_log("访问日志", verify_access_chain)


data_app = typer.Typer(no_args_is_help=True, help="个人信息的保存期限：按期删除学生与监护人的个人信息。")
app.add_typer(data_app, name="data")


@data_app.command("retention")
def data_retention(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="只列出到期应删除的记录，不做任何改动")] = False,
) -> None:
    """按保存期限删除到期的个人信息（与每天的定时任务相同），并列出删除了什么；--dry-run 只列出。"""
    with _errors(), _services() as services, services.db.session() as session:
        retention = services.retention
        plan = retention.plan(session)
        table = Table("规则", "记录", "到期日", title=f"{plan.today:%Y年%-m月%-d日} 到期的记录", title_justify="left")
        for item in plan.items:
            table.add_row(RULE_TITLES[item.rule], item.label, f"{item.due_on:%Y-%m-%d}")
        if plan.page_images:
            table.add_row(RULE_TITLES["page_cache"], f"{len(plan.page_images)} 个页面预览图", "")
        counts = plan.counts()
        summary = "，".join(f"{RULE_TITLES[rule]} {n} 项" for rule, n in counts.items())
        if not plan.items and not plan.page_images:
            out.print("没有到期应删除的个人信息。")
            return
        out.print(table)
        if dry_run:
            out.print(f"（仅列出，未删除）{summary}。去掉 --dry-run 即按上表删除。")
            return
        done = retention.apply(session, plan, Actor(None, OPERATOR), checkpoint=session.commit)
        session.commit()
        out.print(
            "已删除："
            + "，".join(f"{RULE_TITLES[rule]} {n} 项" for rule, n in done.items())
            + "；已记入保存期限台账与审计日志。"
        )


backup_app = typer.Typer(no_args_is_help=True, help="备份与恢复：数据库、归档文件、证书与私钥、服务密钥，加密保存。")
app.add_typer(backup_app, name="backup")

#: The backup's passphrase: an option, its environment variable, or asked for.
BackupPassphrase = Annotated[
    str | None,
    typer.Option(
        "--passphrase",
        envvar="DOCSIGN_BACKUP_PASSPHRASE",
        help="备份口令（也可用环境变量 DOCSIGN_BACKUP_PASSPHRASE；不给口令也不给密钥文件时提示输入）",
        show_default=False,
    ),
]
BackupKeyFile = Annotated[
    Path | None,
    typer.Option("--key-file", help="用密钥文件（至少 32 字节的随机内容）代替口令", show_default=False),
]
#: The shortest key file a new backup accepts (random bytes; a passphrase is judged by its strength).
BACKUP_KEY_FILE_MIN = 32


def _backup_secret(passphrase: str | None, key_file: Path | None, *, new: bool) -> bytes:
    if passphrase and key_file is not None:
        raise InvalidInput("口令和密钥文件只能给一个。")
    if key_file is not None:
        secret = _read_file(key_file).strip()
        if new and len(secret) < BACKUP_KEY_FILE_MIN:
            raise InvalidInput(
                f"密钥文件至少要有 {BACKUP_KEY_FILE_MIN} 字节（例如 head -c 48 /dev/urandom | base64 > 文件）。"
            )
        return secret
    given: str = passphrase or typer.prompt("备份口令", hide_input=True, confirmation_prompt=new)
    if new:
        _strong_enough(given, "备份口令")
    return given.encode()


class _Steps:
    """One progress line per step of a backup or a restore."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.tasks: dict[str, Any] = {}

    def __call__(self, step: str, done: int, total: int) -> None:
        if step not in self.tasks:
            for task in self.tasks.values():
                self.bar.update(task, visible=False)
            self.tasks[step] = self.bar.add_task(step, total=total or None)
        self.bar.update(self.tasks[step], completed=done, total=total or None)


@backup_app.command("create")
def backup_create(
    folder: Annotated[Path, typer.Argument(help="写入备份的新目录（不存在或为空）")],
    passphrase: BackupPassphrase = None,
    key_file: BackupKeyFile = None,
) -> None:
    """在服务运行时创建一致的加密备份：数据库、归档文件（对象存储时为文件清单）、证书与私钥（仍由私钥口令加密）、服务密钥。"""
    from service.backup import create_backup

    with _errors():
        settings = _settings()
        secret = _backup_secret(passphrase, key_file, new=True)
        with _bar() as bar:
            report = create_backup(settings, folder, secret, progress=_Steps(bar))
        rows = sum(report.counts.values())
        files = sum(report.objects.values())
        out.print(f"已创建备份：{report.folder}（{report.size / 1024 / 1024:.1f} MB）", highlight=False)
        out.print(f"数据库：{rows} 行（结构版本 {report.revision}）；时间：{report.created_at}", highlight=False)
        if report.objects_included:
            out.print(f"归档文件：{files} 个，已逐个核对 SHA-256 后加密写入。", highlight=False)
        else:
            out.print(
                f"归档文件：{files} 个保存在对象存储 {settings.archive_url}，备份中只有清单；请另行保护该存储桶（版本控制或复制）。",
                highlight=False,
            )
        out.print("请把备份和口令（或密钥文件）分开保管：没有口令，任何人（包括您）都打不开这份备份。", highlight=False)


@backup_app.command("restore")
def backup_restore(
    folder: Annotated[Path, typer.Argument(help="docsign backup create 写出的备份目录")],
    passphrase: BackupPassphrase = None,
    key_file: BackupKeyFile = None,
) -> None:
    """把备份恢复到全新的空安装（空数据库、空归档、空证书目录）；任何一步失败都撤销已写入的内容。"""
    from service.backup import restore_backup

    with _errors():
        # a restore may bring the service key production needs: it is checked once restored
        settings = _settings(check=False)
        secret = _backup_secret(passphrase, key_file, new=False)
        with _bar() as bar:
            report = restore_backup(settings, folder, secret, progress=_Steps(bar))
        out.print(f"已恢复 {report.created_at} 的备份（数据库结构版本 {report.revision}）。", highlight=False)
        out.print(
            f"数据库 {sum(report.counts.values())} 行与清单一致；归档文件 {sum(report.objects.values())} 个；"
            f"审计日志 {report.audit.events} 条、访问日志 {report.access.events} 条，哈希链已核对。",
            highlight=False,
        )
        if report.secret_written is not None:
            out.print(f"服务密钥已写入 {report.secret_written}（权限 0600）。", highlight=False)
            if settings.production and settings.secret_key_file is None:
                out.print(
                    f"生产环境请设置 DOCSIGN_SECRET_KEY_FILE={report.secret_written} 后再启动服务。", highlight=False
                )
        for warning in report.warnings:
            out.print(f"[bold yellow]注意[/] {warning}", highlight=False)
        out.print("启动服务（docsign serve）时会把数据库结构升级到本机版本。", highlight=False)


@app.command("add-user")
def add_user(
    username: Annotated[str, typer.Argument(help="用户名")],
    unit_code: Annotated[str, typer.Argument(help="所属单位代码")],
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="bureau_staff、office_staff、unit_signer，或三员之一：system_admin（系统管理员）、"
            "security_admin（安全管理员）、audit_admin（审计管理员）",
        ),
    ] = "bureau_staff",
    name: Annotated[str, typer.Option("--name", help="姓名")] = "",
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            help="工作人员账号的初始密码（至少10位，不能太常见；不给出时提示输入）。签署人账号不设密码，打印激活链接",
        ),
    ] = None,
) -> None:
    """创建账号。安装时用它创建三员（系统管理员、安全管理员、审计管理员各一人，分别交给不同的人），之后的业务账号由系统管理员在接口中创建；管理员账号只能用本命令创建。签署人账号得到交给本人的一次性激活链接。"""
    from service.accounts.models import Role
    from service.accounts.scope import Scope
    from service.units import repository as units_repository

    signer = role == Role.SIGNER.value
    if not signer and password is None:
        password = typer.prompt("初始密码", hide_input=True)
    with _errors(), _services() as services, services.db.session() as session:
        unit = units_repository.by_code(session, unit_code)
        if unit is None:
            raise InvalidInput(f"没有代码为「{unit_code}」的单位，请先导入单位。")
        user, link = services.accounts.add_user(
            session,
            Scope.operator(session, unit, OPERATOR),
            username=username,
            password=password,
            display_name=name or username,
            role=role,
            unit=unit,
        )
        enrolled = link is None and services.accounts.needs_totp(user)
        if enrolled:
            uri, codes = services.accounts.enroll_totp(session, Scope.operator(session, unit, OPERATOR), user)
        session.commit()
        out.print(f"已创建账号 {user.username}（{unit.name}）。")
        if link is not None:
            _print_activation(link.url, link.expires_at, services.settings.timezone)
        elif enrolled:
            _print_totp(uri, codes)


def _print_activation(url: str, expires_at: dt.datetime, timezone: str) -> None:
    local = expires_at.astimezone(zoneinfo.ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")
    out.print(
        f"该账号还没有密码。请把下面的激活链接交给本人（只显示这一次，只能使用一次，{local} 前有效），"
        "由本人设置密码并开通动态口令；请勿自己打开：",
        highlight=False,
    )
    out.print(url, soft_wrap=True, highlight=False)


def _print_totp(uri: str, codes: list[str]) -> None:
    out.print("该账号须使用动态口令登录。请在手机验证器中添加以下地址（只显示这一次）：", highlight=False)
    out.print(uri, soft_wrap=True, highlight=False)
    out.print("恢复码（每个可代替动态口令使用一次，请打印后交本人保管）：" + "  ".join(codes), highlight=False)


user_app = typer.Typer(no_args_is_help=True, help="账号维护：动态口令、重置、重新启用。")
app.add_typer(user_app, name="user")


@user_app.command("reset")
def user_reset(username: Annotated[str, typer.Argument(help="用户名")]) -> None:
    """重置账号（管理员账号只能这样重置）：清除密码和动态口令、吊销令牌，打印交给本人的一次性激活链接。"""
    from service.accounts import repository as accounts_repository
    from service.accounts.scope import Scope

    with _errors(), _services() as services, services.db.session() as session:
        user = accounts_repository.by_username(session, username)
        if user is None:
            raise InvalidInput(f"没有用户名为「{username}」的账号。")
        link = services.accounts.reset_password(session, Scope.operator(session, user.unit, OPERATOR), user)
        session.commit()
        out.print(f"已重置账号 {user.username}（{user.unit.name}）。")
        _print_activation(link.url, link.expires_at, services.settings.timezone)


@user_app.command("totp")
def user_totp(username: Annotated[str, typer.Argument(help="用户名")]) -> None:
    """为账号开通（或更换）动态口令，打印验证器地址和恢复码；该账号的会话全部失效。"""
    from service.accounts import repository as accounts_repository
    from service.accounts.scope import Scope

    with _errors(), _services() as services, services.db.session() as session:
        user = accounts_repository.by_username(session, username)
        if user is None:
            raise InvalidInput(f"没有用户名为「{username}」的账号。")
        uri, codes = services.accounts.enroll_totp(session, Scope.operator(session, user.unit, OPERATOR), user)
        session.commit()
        out.print(f"已为 {user.username}（{user.unit.name}）开通动态口令。")
        _print_totp(uri, codes)


@user_app.command("enable")
def user_enable(username: Annotated[str, typer.Argument(help="用户名")]) -> None:
    """重新启用停用的账号（管理员账号只能这样启用，例如长期未登录被自动停用的管理员）。"""
    from service.accounts import repository as accounts_repository
    from service.accounts.scope import Scope

    with _errors(), _services() as services, services.db.session() as session:
        user = accounts_repository.by_username(session, username)
        if user is None:
            raise InvalidInput(f"没有用户名为「{username}」的账号。")
        services.accounts.enable(session, Scope.operator(session, user.unit, OPERATOR), user)
        session.commit()
        out.print(f"已启用账号 {user.username}（{user.unit.name}）。")


roster_app = typer.Typer(no_args_is_help=True, help="名单：导入学生与监护人名单，批量签发通知书。")
app.add_typer(roster_app, name="roster")
notices_app = typer.Typer(no_args_is_help=True, help="通知书批量签发。")
app.add_typer(notices_app, name="notices")


@roster_app.command("import")
def roster_import(
    sheet: Annotated[Path, typer.Argument(help="名单表格（.xlsx、.xls、.et、.ods 或 .csv）")],
    issuer: Annotated[str, typer.Option("--issuer", help="发文单位代码（学校或教体局）")],
    report_by: Annotated[str, typer.Option("--report-by", help="报到截止日期，例如 2025-08-31")],
    kind: Annotated[
        str, typer.Option("--kind", help="enrollment_notice（入学）或 return_notice（复学）")
    ] = "enrollment_notice",
    only_valid: Annotated[bool, typer.Option("--only-valid", help="只导入无误的行（有错的行列出后跳过）")] = False,
) -> None:
    """导入名单：逐行检查，有错误时列出（行、列、原因）且一行也不导入，除非 --only-valid。"""
    import datetime as dt

    from service.accounts.scope import Scope
    from service.units import repository as units_repository

    with _errors():
        try:
            due = dt.date.fromisoformat(report_by)
        except ValueError:
            raise InvalidInput("--report-by 应写成 年-月-日，例如 2025-08-31。") from None
        data = _read_file(sheet)
        with _services() as services, services.db.session() as session:
            unit = units_repository.by_code(session, issuer)
            if unit is None:
                raise InvalidInput(f"没有代码为「{issuer}」的学校或教体局。")
            try:
                roster, skipped = services.rosters.import_roster(
                    session,
                    Scope.operator(session, unit, OPERATOR),
                    data,
                    sheet.name,
                    kind=kind,
                    report_by=due,
                    only_valid=only_valid,
                )
            except DocsignError as exc:
                errors = exc.details.get("errors", []) if isinstance(exc.details, dict) else []
                _row_errors(errors)
                raise _fail(exc, list_errors=not errors) from None
            session.commit()
            _row_errors(skipped, "跳过的行")
            out.print(
                f"已导入名单 {roster.id}：{roster.rows} 名学生"
                + (f"，跳过 {roster.skipped} 行" if roster.skipped else "")
            )
            out.print(f"签发：docsign notices issue --roster {roster.id}")


def _row_errors(errors: list[dict[str, Any]], title: str = "名单中的错误") -> None:
    """The rows a sheet import refused, as the page lists them: row, column, reason."""
    if not errors:
        return
    table = Table(
        "行", "学生", "列", "表中填写的", "原因与改法", title=f"{title}（{len(errors)} 处）", title_justify="left"
    )
    for e in errors:
        table.add_row(
            str(e.get("row") or ""),
            str(e.get("student") or ""),
            str(e.get("column") or ""),
            str(e.get("value") or "（空）"),
            str(e.get("message") or ""),
        )
    err.print(table)


@notices_app.command("issue")
def notices_issue(
    roster_id: Annotated[int, typer.Option("--roster", help="名单编号（roster import 打印的）")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="把各校的打印文件写到这个目录")] = None,
) -> None:
    """批量签发名单中的通知书；中断后再次执行只补发未签发的，不会重复。"""
    from service.accounts.scope import Scope
    from service.jobs.runner import JobBusy, JobFailed
    from service.rosters import repository as rosters_repository

    with _errors(), _services() as services:
        with services.db.session() as session:
            roster = rosters_repository.by_id(session, roster_id)
            if roster is None:
                raise InvalidInput(f"没有编号为 {roster_id} 的名单。")
            job, _ = services.rosters.start_issue(
                session, Scope.operator(session, roster.issuer, OPERATOR), roster, services.jobs
            )
            session.commit()
            before, total = _issued(session, roster_id), roster.rows
        with _bar() as bar:
            task = bar.add_task("签发通知书", total=total)
            try:  # a job whose process died resumes here; one that runs elsewhere is left alone
                ended = services.jobs.run_here(
                    job.id, lambda done, total, stage: bar.update(task, completed=done, total=total)
                )
            except JobBusy:
                raise JobBusy(f"名单 {roster_id} 正在由服务签发（后台任务 {job.id}），请等它结束后再试。") from None
        if ended.status != "done":
            raise JobFailed(f"[{ended.error_code}] {ended.error_message}")
        with services.db.session() as session:
            issued = _issued(session, roster_id)
            out.print(f"本次签发 {issued - before} 份；名单共 {total} 份均已签发。")
            roster = rosters_repository.by_id(session, roster_id)
            assert roster is not None
            for b in rosters_repository.print_bundles(
                session, Scope.operator(session, roster.issuer, OPERATOR), roster
            ):
                line = f"{b.school.name}：{b.notices} 份，打印文件 {b.pages} 页"
                if out_dir is not None:
                    out_dir.mkdir(parents=True, exist_ok=True)
                    path = out_dir / f"{b.school.code}-print.pdf"
                    with path.open("wb") as fh:
                        for block in services.archive.documents.stream(b.sha256):
                            fh.write(block)
                    line += f"（{path}）"
                out.print(line)


def _issued(session: Any, roster_id: int) -> int:
    from service.accounts.scope import Scope
    from service.rosters import repository as rosters_repository

    roster = rosters_repository.by_id(session, roster_id)
    if roster is None:
        return 0
    return rosters_repository.issued_count(session, Scope.operator(session, roster.issuer, OPERATOR), roster)


notify_app = typer.Typer(no_args_is_help=True, help="通知：到期提醒、逾期督办、催办与 Webhook 推送。")
app.add_typer(notify_app, name="notify")


def _print_sent(deliveries: Sequence[Delivery], title: str) -> None:
    table = Table("渠道", "单位", "收件人", "类别", "标题", "状态", title=title, title_justify="left")
    for d in deliveries:
        table.add_row(
            CHANNEL_TITLES.get(d.channel, d.channel),
            d.unit.name if d.unit else "",
            d.recipient_masked,
            d.kind,
            d.subject,
            STATUS_TITLES.get(d.status, d.status),
        )
    out.print(table)


@notify_app.command("run")
def notify_run() -> None:
    """立即执行一次提醒规则并发送到期的通知与 Webhook（与每5分钟的定时任务相同），列出发送了什么。"""
    with _errors(), _services() as services, services.db.session() as session:
        report = services.notify.run(session, session.commit)
        if report.sent:
            _print_sent(report.sent, f"已发送 {len(report.sent)} 条通知")
        else:
            out.print("没有需要发送的通知。")
        if report.held:
            out.print(f"另有 {len(report.held)} 条暂缓发送（夜间免打扰、机器人限频或失败后等待重试）。")
        if report.failed:
            _print_sent(report.failed, f"{len(report.failed)} 条发送失败（已记入发送记录，可在页面重发）")
        if report.webhooks_sent or report.webhooks_failed:
            out.print(f"Webhook：送达 {report.webhooks_sent} 条，未送达 {report.webhooks_failed} 条（将按退避重试）。")


@notify_app.command("test")
def notify_test(
    channel: Annotated[str, typer.Argument(help="email、wecom、dingtalk 或 sms")],
    recipient: Annotated[str, typer.Argument(help="邮箱、手机号或机器人 Webhook 地址")],
    secret: Annotated[str, typer.Option("--secret", help="钉钉机器人的加签密钥（SEC 开头）")] = "",
) -> None:
    """发送一条测试消息（不受夜间免打扰限制），并显示服务商的应答。"""
    with _errors(), _services() as services, services.db.session() as session:
        delivery = services.notify.test_message(session, channel, recipient, secret or None)
        session.commit()
        report = services.notify.send_due(session, session.commit, only=[delivery.id])
        if report.sent:
            out.print(f"测试消息已发送到 {delivery.recipient_masked}。服务商应答：{delivery.answer}")
            return
        raise DeliveryFailed(f"测试消息未能发送到 {delivery.recipient_masked}：{delivery.answer}")


def main() -> None:
    _configure_logging()
    app()


if __name__ == "__main__":
    main()
