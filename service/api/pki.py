"""The local certificate authority's public files: the root certificate and the revocation lists."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from service.http.deps import ServicesDep

router = APIRouter(tags=["公开验证"])


@router.get("/pki/root.crt", summary="本地根证书（导入后 Adobe 等软件可验证签名）", response_class=Response)
def root_certificate(services: ServicesDep) -> Response:
    pem = services.pki.root_certificate().public_bytes(serialization.Encoding.PEM)
    return Response(
        pem,
        media_type="application/x-pem-file",
        headers={"Content-Disposition": "attachment; filename=docsign-root.crt"},
    )


@router.get("/pki/{which}.crl", summary="证书吊销列表", response_class=Response)
def crl(which: str, services: ServicesDep) -> Response:
    crl = services.pki.crl(which)
    if crl is None:
        return JSONResponse({"code": "NOT_FOUND", "message": "没有这个吊销列表。"}, status_code=404)
    return Response(crl.public_bytes(serialization.Encoding.DER), media_type="application/pkix-crl")
