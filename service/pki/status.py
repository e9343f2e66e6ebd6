"""What the PKI reports: what expires when (:func:`status`, read by ``docsign pki status`` and the
bureau dashboard) and what one upkeep run did (:class:`MaintenanceReport`, from
:meth:`service.pki.store.Pki.maintain`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509

from service.pki.authority import CA_LABELS, ISSUING_ROLLOVER, Authority, IssuingRollover, ca_label
from service.pki.certificates import common_name, shown, useful_until
from service.pki.crls import CRL_REFRESH_MARGIN, PublishedCrl, Revocations
from service.pki.tsa import TimeStamping, TsaRollover
from service.pki.units import UNIT_RENEW_MARGIN, RenewedUnit, Units

#: The bureau dashboard (and ``docsign pki status``) warns about a certificate this long before it expires.
WARN_WITHIN = dt.timedelta(days=90)


@dataclass(frozen=True)
class StatusItem:
    """One thing that expires: a certificate (``valid_from``/``expires`` are notBefore/notAfter) or a
    CRL (thisUpdate/nextUpdate)."""

    kind: str  # "root", "issuing", "tsa", "unit" or "crl"
    label: str  # what it is, in Chinese: 根证书, 签发中心证书, 时间戳证书, 单位签章证书, 吊销列表
    name: str  # the certificate's common name, or whose CRL it is
    key: str | None  # a unit's key; "root" or "issuing" for a CRL
    serial: int | None  # certificate serial, or CRL number
    valid_from: dt.datetime
    expires: dt.datetime
    #: When :meth:`Pki.maintain` replaces it; None when nothing here does (CAs, imported or revoked
    #: certificates).
    renews_from: dt.datetime | None
    days_left: int
    #: The dashboard should warn: a certificate expires within :data:`WARN_WITHIN`, or a CRL is
    #: within :data:`CRL_REFRESH_MARGIN` of its nextUpdate (a 30-day CRL is always within 90 days;
    #: inside the margin it means nobody re-published it).
    warn: bool
    revoked: bool = False
    note: str = ""
    #: Where its private key lives, in Chinese: a file (and how it is encrypted), a token, offline;
    #: empty for a CRL.
    key_location: str = ""


@dataclass(frozen=True)
class PkiStatus:
    at: dt.datetime
    items: list[StatusItem]

    @property
    def warnings(self) -> list[StatusItem]:
        return [i for i in self.items if i.warn]


@dataclass(frozen=True)
class MaintenanceReport:
    """What one :meth:`Pki.maintain` run did."""

    at: dt.datetime
    crls: list[PublishedCrl]
    renewed: list[RenewedUnit]
    tsa: TsaRollover | None
    issuing: IssuingRollover | None
    #: Things due that this run could not do, in Chinese (an imported certificate near expiry, the
    #: issuing CA too close to its end); they need a person.
    attention: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.crls or self.renewed or self.tsa or self.issuing)

    def lines(self) -> list[str]:
        """The report in Chinese, a line per action."""
        out = []
        if self.issuing is not None:
            out.append(
                f"已启用新的签发中心证书（{self.issuing.new_name}，序列号 {self.issuing.new_serial:x}），"
                f"有效期至 {shown(self.issuing.expires)}；原签发中心（{self.issuing.old_name}）继续发布吊销列表至其到期"
            )
        out += [
            f"已重新发布{ca_label(c.which)}的吊销列表（编号 {c.number}），下次更新 {shown(c.next_update)}"
            for c in self.crls
        ]
        out += [
            f"已为单位「{r.name}」（{r.key}）续期签章证书：新序列号 {r.new_serial:x}，有效期至 {shown(r.expires)}；"
            f"旧证书 {r.old_serial:x} 保留，用于验证此前签署的文书"
            for r in self.renewed
        ]
        if self.tsa is not None:
            out.append(
                f"已更换时间戳证书：新序列号 {self.tsa.new_serial:x}，有效期至 {shown(self.tsa.expires)}；"
                f"旧证书 {self.tsa.old_serial:x} 保留，用于验证此前的时间戳"
            )
        out += [f"需要人工处理：{a}" for a in self.attention]
        if not out:
            out.append("无需处理：证书和吊销列表都未到续期时间。")
        return out


def status(
    authority: Authority,
    timestamping: TimeStamping,
    revocations: Revocations,
    units: Units,
    at: dt.datetime,
    warn_within: dt.timedelta = WARN_WITHIN,
) -> PkiStatus:
    """What expires when at ``at``: the CAs, the TSA, the CRLs (nextUpdate), then every unit's
    current certificate, soonest first; ``warn`` marks what the dashboard should warn about."""

    def item(
        kind: str,
        label: str,
        cert: x509.Certificate,
        key: str | None,
        renews_from: dt.datetime | None,
        revoked: bool = False,
        note: str = "",
        key_location: str = "",
    ) -> StatusItem:
        expires = cert.not_valid_after_utc
        return StatusItem(
            kind=kind,
            label=label,
            name=common_name(cert),
            key=key,
            serial=cert.serial_number,
            valid_from=cert.not_valid_before_utc,
            expires=expires,
            renews_from=renews_from,
            days_left=(expires - at).days,
            warn=not revoked and expires - at <= warn_within,
            revoked=revoked,
            note=note,
            key_location=key_location,
        )

    issuing = authority.issuing_certificate()
    root_key = authority.key_location("root")
    items = [
        item("root", CA_LABELS["root"], authority.root_certificate(), None, None, False, "到期前需人工更换", root_key),
        item(
            "issuing",
            CA_LABELS["issuing"],
            issuing,
            None,
            useful_until(issuing) - ISSUING_ROLLOVER,
            key_location=authority.key_location(authority.issuing_name()),
        ),
    ]
    for name in authority.ca_names()[2:]:
        retired = authority.ca_certificate(name)
        where = authority.key_location(name)
        items.append(item("issuing", ca_label(name), retired, name, None, False, "已停止签发，仍发布吊销列表", where))
    tsa = timestamping.certificate()
    items.append(
        item("tsa", "时间戳证书", tsa, None, timestamping.renews_from(tsa), key_location=timestamping.key_location())
    )
    for which in authority.ca_names():
        crl = revocations.read(which)
        if crl is None or crl.next_update_utc is None:
            continue
        try:
            number: int | None = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except x509.ExtensionNotFound:
            number = None
        republish = crl.next_update_utc - CRL_REFRESH_MARGIN
        items.append(
            StatusItem(
                kind="crl",
                label="吊销列表",
                name=f"{ca_label(which)}的吊销列表",
                key=which,
                serial=number,
                valid_from=crl.last_update_utc,
                expires=crl.next_update_utc,
                renews_from=republish,
                days_left=(crl.next_update_utc - at).days,
                warn=at >= republish,
            )
        )
    revoked = revocations.revoked()
    unit_items = []
    for key in units.unit_keys():
        cert, imported = units.current_certificate(key)
        is_revoked = str(cert.serial_number) in revoked
        note = "已吊销" if is_revoked else "导入的证书，需向发证机构申请新证书" if imported else ""
        renews_from = None if is_revoked or imported else cert.not_valid_after_utc - UNIT_RENEW_MARGIN
        unit_items.append(
            item("unit", "单位签章证书", cert, key, renews_from, is_revoked, note, units.key_location(key))
        )
    unit_items.sort(key=lambda i: (i.expires, i.key or ""))
    return PkiStatus(at, items + unit_items)
