"""The one place that strings the pipeline together: validate -> render -> convert -> stamp ->
sign -> archive. The CLI, the API, the web pages and batch jobs all call :class:`DocumentEngine`.

A single document is a batch of one. A batch of one template is rendered into merged DOCX files of
``merge_chunk_size`` documents, each converted by one soffice call; while soffice converts the
next chunk, this process stamps and signs the previous one (the two use different cores). Each
document is archived only once it is signed, so a failure leaves nothing half-made in the archive.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import io
import itertools
import multiprocessing
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pikepdf
from cryptography.hazmat.primitives import serialization
from PIL import Image
from pypdf import PdfReader
from pypdf.errors import PdfReadError

from service.children import spawn_without_interrupts
from service.documents.certification import appearance_key, dress
from service.documents.codes import new_code, normalize_code, verification_url
from service.documents.convert import Converter, ConverterConfig
from service.documents.engines import SigningEngine, signing_engine
from service.documents.errors import FieldsInvalid, LayoutError, NotSignable, PdfInvalid, TemplateInvalid
from service.documents.fields import validate_fields
from service.documents.placement import Placement, document_anchors, place_all, placement_in_box
from service.documents.registry import DocumentKind, get_kind, load_schema
from service.documents.render import CompiledTemplate, complete_context
from service.documents.sandbox import UploadVerifier
from service.documents.seal import load_signature_image
from service.documents.sign import Appearance, Signatory, _asn1_cert, empty_field_box
from service.documents.stamp import StampMark, split_and_stamp
from service.documents.verify import VerificationReport, verify_pdf
from service.pki.store import Pki
from service.settings import Settings
from service.storage import open_store
from service.storage.base import ArchiveStore

#: Progress callback: (stage, done, total).
Progress = Callable[[str, int, int], None]
#: Told the hashes of signed documents just before they are archived.
BeforeStore = Callable[[list[str]], None]
STAGES = ("render", "convert", "split", "stamp", "sign", "archive")
#: Layouts of an assembled document before its page numbers must have settled: the second one
#: fills them in, a third only when filling them in moved a page.
MAX_LAYOUTS = 3


@dataclass(frozen=True)
class IssueRequest:
    """One document to issue."""

    kind: str
    fields: Mapping[str, Any]
    #: The unit whose certificate certifies the document; by default derived from its name.
    issuer_key: str | None = None
    #: A verification code reserved beforehand (a resumable batch keeps its codes); new if None.
    code: str | None = None
    #: The issuer's handwritten signature (PNG/JPEG), drawn beside its seal where the layout has room.
    signature_image: bytes | None = None
    #: An image of the issuer's real seal, used instead of the drawn one.
    seal_image: bytes | None = None


@dataclass(frozen=True)
class EmbeddedFile:
    """A file a document carries whole (a PDF attachment: an archived original, unaltered)."""

    name: str
    data: bytes
    description: str
    mime_type: str = "application/pdf"


@dataclass(frozen=True)
class Appendix:
    """What a document assembled from records carries after its template's pages (a case file's
    originals): ``pdf``'s pages, and ``files`` embedded. ``refill`` gives the fields again once
    the template's pages are laid out (their count, and the page, from 1, of each bookmark), so a
    table of contents can name the pages."""

    pdf: bytes | None
    files: tuple[EmbeddedFile, ...]
    refill: Callable[[int, Mapping[str, int]], Mapping[str, Any]]


@dataclass(frozen=True)
class IssuedDocument:
    kind: str
    code: str
    url: str
    sha256: str
    pdf: bytes
    pages: int
    issuer_key: str
    issuer_name: str
    fields: dict[str, Any]
    issued_at: dt.datetime
    #: The request this document answers (batches come back grouped by template, not in order).
    request: IssueRequest


@dataclass
class StageTimes:
    """Seconds spent per stage, for benchmarks."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    documents: int = 0

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] += seconds

    def per_document_ms(self) -> dict[str, float]:
        n = max(self.documents, 1)
        return {stage: self.seconds.get(stage, 0.0) * 1000 / n for stage in STAGES}


def unit_key_for(name: str) -> str:
    """A stable unit key for a unit known only by its name (the CLI's issuers)."""
    return "u-" + hashlib.sha256(name.strip().encode()).hexdigest()[:16]


def _open_image(data: bytes | None) -> Image.Image | None:
    return load_signature_image(data) if data else None


class DocumentEngine:
    """The document pipeline with its warm resources (LibreOffice, keys, compiled templates)."""

    def __init__(
        self,
        settings: Settings,
        *,
        pki: Pki | None = None,
        archive: ArchiveStore | None = None,
        converter: Converter | None = None,
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.settings = settings
        # the signing workers leave Ctrl-C to this process, which stops them in order
        spawn_without_interrupts(settings.temp_dir)
        self.pki = pki or Pki.from_settings(settings)
        self.archive: ArchiveStore = archive or open_store(settings, "documents")
        self._converter = converter
        self._own_converter = converter is None
        self.signatory = Signatory(self.pki, settings.tsa_url, now)
        #: What makes the signatures (``DOCSIGN_SIGNING_ENGINE``); the signing workers choose the same.
        self.signing: SigningEngine = signing_engine(settings.signing_engine, self.signatory)
        self._templates: dict[tuple[str, float], CompiledTemplate] = {}
        self._lock = threading.Lock()
        self.times = StageTimes()
        self._now = now
        self._workers: ProcessPoolExecutor | None = None

    # --- resources ----------------------------------------------------------------------------

    @property
    def converter(self) -> Converter:
        with self._lock:
            if self._converter is None:
                s = self.settings
                self._converter = Converter(
                    ConverterConfig(
                        soffice_path=s.soffice_path,
                        uno_python=s.uno_python,
                        timeout=s.conversion_timeout,
                        startup_timeout=s.converter_startup_timeout,
                        processes=s.converter_processes,
                        max_office_mb=s.converter_max_mb,
                        temp_root=s.temp_dir,
                    )
                )
            return self._converter

    def template(self, kind: DocumentKind) -> CompiledTemplate:
        path = kind.template_path(self.settings.templates_dir)
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            raise TemplateInvalid(f"模板文件不存在：{path.name}。") from None
        key = (str(path), mtime)
        with self._lock:
            if key not in self._templates:
                self._templates[key] = CompiledTemplate(path.read_bytes(), kind.title)
            return self._templates[key]

    def close(self) -> None:
        if self._converter is not None and self._own_converter:
            self._converter.close()
            self._converter = None
        if self._workers is not None:
            self._workers.shutdown(wait=True, cancel_futures=True)
            self._workers = None

    def __enter__(self) -> DocumentEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- issuing ------------------------------------------------------------------------------

    def check(self, requests: Sequence[IssueRequest]) -> None:
        """Validate every request (fields, codes, issuers' certificates) without issuing any;
        raises FieldsInvalid listing every bad field of every request."""
        self._prepare(requests)

    def validate(self, kind_key: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        kind = get_kind(kind_key)
        return validate_fields(kind, fields, self.settings.schemas_dir)

    def issue(
        self, request: IssueRequest, progress: Progress | None = None, before_store: BeforeStore | None = None
    ) -> IssuedDocument:
        return self.issue_many([request], progress=progress, before_store=before_store)[0]

    def issue_many(
        self,
        requests: Sequence[IssueRequest],
        *,
        progress: Progress | None = None,
        merge: bool = True,
        on_issued: Callable[[IssuedDocument], None] | None = None,
        keep: bool = True,
        before_store: BeforeStore | None = None,
    ) -> list[IssuedDocument]:
        """Issue documents, grouped by template. Every request is validated before any work starts.

        ``on_issued`` is called for each document right after it is archived. With ``keep=False``
        the documents are not collected. ``before_store`` is told the hashes of each group of
        signed documents before they are written to the archive (a journal of writes in flight).
        """
        if not requests:
            return []
        prepared = self._prepare(requests)
        size = self.settings.merge_chunk_size if merge and self._mergeable(prepared) else 1
        chunks: list[list[_Prepared]] = []
        for p in prepared:  # _prepare grouped the requests by template; a chunk holds one template
            if chunks and len(chunks[-1]) < size and chunks[-1][0].kind.key == p.kind.key:
                chunks[-1].append(p)
            else:
                chunks.append([p])
        out: list[IssuedDocument] = []

        def collect(doc: IssuedDocument) -> None:
            if keep:
                out.append(doc)
            if on_issued is not None:
                on_issued(doc)

        self._run(iter(chunks), len(prepared), collect, progress, before_store)
        return out

    def issue_stream(
        self,
        requests: Iterable[IssueRequest],
        *,
        total: int,
        on_issued: Callable[[IssuedDocument], None],
        progress: Progress | None = None,
        before_store: BeforeStore | None = None,
    ) -> int:
        """Issue documents read lazily (a roster of thousands), in order within each template, holding
        only a few chunks in memory. Requests are validated chunk by chunk, so an invalid one stops
        the run after the documents before it: a caller that records each document in
        ``on_issued`` resumes from there. Returns how many were issued."""
        count = 0

        def chunks() -> Iterator[list[_Prepared]]:
            size = self.settings.merge_chunk_size
            it = iter(requests)
            while group := list(itertools.islice(it, size)):
                prepared = self._prepare(group)  # grouped by template: one conversion per template
                for _, same in itertools.groupby(prepared, key=lambda p: p.kind.key):
                    run = list(same)
                    if self._mergeable(run):
                        yield run
                    else:
                        yield from ([p] for p in run)

        def counted(doc: IssuedDocument) -> None:
            nonlocal count
            count += 1
            on_issued(doc)

        self._run(chunks(), total, counted, progress, before_store)
        return count

    def _run(
        self,
        chunks: Iterator[list[_Prepared]],
        total: int,
        on_issued: Callable[[IssuedDocument], None],
        progress: Progress | None,
        before_store: BeforeStore | None = None,
    ) -> None:
        """Convert chunk after chunk in a thread (soffice works on its own core) while this thread
        hands the previous chunk to the signing workers and archives what they return."""
        use_pool = total >= self.settings.sign_pool_threshold
        if use_pool and (workers := self._pool) is not None:
            # Start the workers (and load their keys) while the first chunk converts.
            for _ in range(self._worker_count()):
                workers.submit(_ready)
        done = 0

        def report(stage: str) -> None:
            if progress is not None:
                progress(stage, done, total)

        report("render")
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="docsign-convert") as pool:
            pending: Future[tuple[list[_Prepared], bytes]] | None = None
            while True:
                chunk = next(chunks, None)
                # Start converting the next chunk before finishing this one.
                next_future = pool.submit(self._render_and_convert, chunk) if chunk is not None else None
                if pending is not None:
                    batch, pdf = pending.result()
                    for doc in self._finish(batch, pdf, use_pool, before_store):
                        done += 1
                        on_issued(doc)
                        report("sign")
                if next_future is None:
                    break
                pending = next_future
        report("done")

    def _prepare(self, requests: Sequence[IssueRequest]) -> list[_Prepared]:
        prepared: list[_Prepared] = []
        errors: list[dict[str, Any]] = []
        for i, req in enumerate(requests):
            kind = get_kind(req.kind)
            try:
                fields = validate_fields(kind, req.fields, self.settings.schemas_dir)
            except FieldsInvalid as exc:
                if len(requests) == 1:
                    raise
                for e in (exc.details or {}).get("errors", []):
                    errors.append({"index": i, **e})
                continue
            code = req.code or new_code()
            if normalize_code(code) != code:
                raise FieldsInvalid(f"验证码「{code}」格式不正确。")
            issuer_name = str(fields[kind.issuer.name_field])
            issuer_key = req.issuer_key or unit_key_for(issuer_name)
            prepared.append(_Prepared(kind, req, fields, code, issuer_key, issuer_name))
        if errors:
            raise FieldsInvalid(
                f"共有 {len({e['index'] for e in errors})} 份文书的字段有误，未签发任何文书。",
                details={"errors": errors},
            )
        if len({p.kind.key for p in prepared}) > 1:
            # one template per merged conversion; mixed batches run kind by kind
            by_kind: dict[str, list[_Prepared]] = defaultdict(list)
            for p in prepared:
                by_kind[p.kind.key].append(p)
            prepared = [p for group in by_kind.values() for p in group]
        # Certificates for every issuer, before any conversion runs.
        for key, name in {(p.issuer_key, p.issuer_name) for p in prepared}:
            self.pki.ensure_unit(key, name)
        return prepared

    def _mergeable(self, prepared: Sequence[_Prepared]) -> bool:
        """Templates whose headers or footers hold fields convert one document at a time."""
        return all(self.template(kind).static_parts for kind in {p.kind for p in prepared})

    def _render_and_convert(self, batch: list[_Prepared]) -> tuple[list[_Prepared], bytes]:
        t0 = time.perf_counter()
        template = self.template(batch[0].kind)
        schema = load_schema(batch[0].kind, self.settings.schemas_dir)
        bodies = [template.render_body(complete_context(schema, p.fields)) for p in batch]
        docx = template.compose(bodies)
        t1 = time.perf_counter()
        pdf = self.converter.convert(docx)
        t2 = time.perf_counter()
        self.times.add("render", t1 - t0)
        self.times.add("convert", t2 - t1)
        return batch, pdf

    def converted(self, requests: Sequence[IssueRequest]) -> SignBatch:
        """Documents of one template rendered and converted together, with what cutting each out
        and certifying it needs, signed by nobody yet: to run one conversion through several
        signing engines (their agreement tests)."""
        prepared = self._prepare(requests)
        batch, pdf = self._render_and_convert(prepared)
        return SignBatch(pdf, self._sign_tasks(batch, pdf)[0])

    def _sign_tasks(self, batch: list[_Prepared], pdf: bytes) -> tuple[list[SignTask], list[int]]:
        """Each document's task, and the first page of each (the page count last)."""
        reader = PdfReader(io.BytesIO(pdf))
        anchors = document_anchors(reader)
        starts = []
        for i in range(len(batch)):
            if i not in anchors or "start" not in anchors[i]:
                raise LayoutError("转换结果中找不到文书的起始位置，模板中的书签可能已损坏。")
            starts.append(anchors[i]["start"].page)
        starts.append(len(reader.pages))
        base = self.settings.public_base_url
        at = self._now() if self._now is not None else None
        tasks = [
            SignTask(
                pages=range(starts[i], starts[i + 1]),
                mark=StampMark(verification_url(base, p.code), p.code, p.kind.title, p.kind.key),
                unit_key=p.issuer_key,
                placements=place_all(p.kind, anchors[i], p.fields, first_page=starts[i]),
                seal_name=p.issuer_name,
                seal_image=p.request.seal_image,
                signature_image=p.request.signature_image,
                reason=f"签发《{p.kind.title}》",
                at=at,
            )
            for i, p in enumerate(batch)
        ]
        return tasks, starts

    def issue_assembled(
        self, request: IssueRequest, appendix: Appendix, before_store: BeforeStore | None = None
    ) -> IssuedDocument:
        """One document whose template's pages are followed by ``appendix``'s pages and which embeds
        ``appendix``'s files, certified as a whole and archived. The template is laid out again with
        the fields ``appendix.refill`` gives for its pages until they no longer change (a table of
        contents whose page numbers move its own pages)."""
        prepared = self._prepare([request])
        for _ in range(MAX_LAYOUTS):
            batch, text = self._render_and_convert(prepared)
            reader = PdfReader(io.BytesIO(text))
            marks = {name: a.page + 1 for name, a in document_anchors(reader).get(0, {}).items()}
            fields = dict(appendix.refill(len(reader.pages), marks))
            again = self._prepare([dataclasses.replace(request, fields=fields, code=prepared[0].code)])
            if again[0].fields == prepared[0].fields:
                break
            prepared = again
        else:
            raise LayoutError("目录页码无法稳定，案卷未能生成。")
        return next(self._finish(batch, _joined(text, appendix.pdf), False, before_store, files=appendix.files))

    def _finish(
        self,
        batch: list[_Prepared],
        pdf: bytes,
        use_pool: bool,
        before_store: BeforeStore | None = None,
        files: tuple[EmbeddedFile, ...] = (),
    ) -> Iterator[IssuedDocument]:
        tasks, starts = self._sign_tasks(batch, pdf)
        if files:
            tasks = [dataclasses.replace(t, files=files) for t in tasks]
        base = self.settings.public_base_url
        pool = self._pool if use_pool else None
        results: list[FinishedDocument]
        if pool is not None:
            # Two slices per worker: small enough to keep every worker busy, large enough that
            # cutting documents out of the merged PDF stays cheap (each slice reads it again).
            step = max(1, -(-len(tasks) // (2 * self._worker_count())))
            slices = [SignBatch(pdf, tasks[i : i + step]) for i in range(0, len(tasks), step)]
            results = [doc for done in pool.map(_run_batch, slices) for doc in done]
        else:
            results = finish_batch(SignBatch(pdf, tasks), self.signing)
        digests = [hashlib.sha256(f.pdf).hexdigest() for f in results]
        if before_store is not None:
            before_store(digests)
        t_archive = time.perf_counter()
        stored = self.archive.put_many([f.pdf for f in results])  # one flush per slice
        self.times.add("archive", time.perf_counter() - t_archive)
        for i, (p, finished, digest) in enumerate(zip(batch, results, stored, strict=True)):
            self.times.add("split", finished.split_seconds)
            self.times.add("stamp", finished.stamp_seconds)
            self.times.add("sign", finished.sign_seconds)
            self.times.documents += 1
            yield IssuedDocument(
                kind=p.kind.key,
                code=p.code,
                url=verification_url(base, p.code),
                sha256=digest,
                pdf=finished.pdf,
                pages=starts[i + 1] - starts[i],
                issuer_key=p.issuer_key,
                issuer_name=p.issuer_name,
                fields=p.fields,
                issued_at=self._now() if self._now is not None else dt.datetime.now(dt.UTC),
                request=p.request,
            )

    def _worker_count(self) -> int:
        workers = self.settings.sign_workers
        return workers if workers is not None else (os.cpu_count() or 1)

    @property
    def _pool(self) -> ProcessPoolExecutor | None:
        """Worker processes that stamp and sign in parallel (started on first use)."""
        workers = self._worker_count()
        if workers <= 0:
            return None
        with self._lock:
            if self._workers is None:
                self._workers = ProcessPoolExecutor(
                    max_workers=workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker,
                    initargs=(
                        self.settings.model_dump(mode="json")
                        | {
                            "pki_passphrase": self.settings.pki_passphrase.get_secret_value(),
                            "pkcs11_pin": self.settings.pkcs11_pin.get_secret_value(),
                        },
                    ),
                )
            return self._workers

    def preview(self, kind_key: str, fields: Mapping[str, Any]) -> bytes:
        """One document rendered and converted, unsigned and without a verification code: a draft
        for the issuer to read before issuing."""
        kind = get_kind(kind_key)
        valid = validate_fields(kind, fields, self.settings.schemas_dir)
        schema = load_schema(kind, self.settings.schemas_dir)
        return self.converter.convert(self.template(kind).render(complete_context(schema, valid)))

    # --- later signatures and verification ----------------------------------------------------

    def sign_as(
        self,
        pdf: bytes,
        *,
        unit_key: str,
        field_name: str | None = None,
        signature_image: bytes | None = None,
        seal_image: bytes | None = None,
        before_store: BeforeStore | None = None,
        store: bool = True,
    ) -> tuple[bytes, str]:
        """A later signer (a principal, an office director) signs its field; returns the new PDF and
        its hash, archived.

        The document must be genuine before it is signed: signing an altered copy is refused.
        """
        report = self.verify(pdf)
        if not report.genuine:
            reasons = "；".join(p.message for p in report.all_problems[:3])
            raise PdfInvalid(f"该文件未通过验证，不能签署：{reasons}")
        kind = self._kind_of(pdf)
        slots = kind.later_signers
        if not slots:
            raise NotSignable(f"《{kind.title}》不需要其他单位签署。")
        slot = kind.slot(field_name) if field_name else slots[0]
        if slot not in slots:
            raise NotSignable(f"「{slot.title}」不是供其他单位签署的位置。")
        page, box = empty_field_box(pdf, slot.field_name)
        creds = self.pki.unit(unit_key)
        placement = placement_in_box(slot, box, page) if box is not None else None
        if placement is None:
            raise NotSignable("该签署位置没有可见区域。")
        signed = self.signing.approve(
            pdf,
            unit_key=unit_key,
            placement=placement,
            appearance=Appearance(creds.name, _open_image(seal_image), _open_image(signature_image)),
            reason=f"签署《{kind.title}》",
        )
        digest = hashlib.sha256(signed).hexdigest()
        if not store:
            return signed, digest
        if before_store is not None:
            before_store([digest])
        return signed, self.archive.put(signed)

    @staticmethod
    def _kind_of(pdf: bytes) -> DocumentKind:
        try:
            info: Mapping[str, Any] = PdfReader(io.BytesIO(pdf)).metadata or {}
        except (PdfReadError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise PdfInvalid() from exc
        key = info.get("/DocsignKind")
        if not key:
            raise NotSignable("该文件不是本系统签发的文书（缺少文书类型信息）。")
        return get_kind(str(key))

    def verify(self, pdf: bytes) -> VerificationReport:
        """The strict verifier, on a file we made or hold (in this process)."""
        roots, crls, pinned = self._trust()
        return verify_pdf(pdf, roots, crls, now=self._now() if self._now is not None else None, pinned=pinned)

    def verify_untrusted(self, pdf: bytes, verifier: UploadVerifier) -> VerificationReport:
        """The same verifier on a file from anyone, in a separate process under hard limits."""
        roots, crls, pinned = self._trust()
        return verifier.verify(pdf, roots, crls, now=self._now() if self._now is not None else None, pinned=pinned)

    def _trust(self) -> tuple[list[Any], list[bytes], frozenset[str] | None]:
        roots = [_asn1_cert(c) for c in self.pki.trust_roots()]
        crls = [c.public_bytes(serialization.Encoding.DER) for c in self.pki.crls()]
        return roots, crls, self.pki.imported_fingerprints()


@dataclass(frozen=True)
class SignTask:
    """One document of a merged conversion to cut out, stamp and certify: plain data, so a worker
    process can take it."""

    #: The document's pages in the merged PDF.
    pages: range
    mark: StampMark
    unit_key: str
    placements: list[Placement]
    seal_name: str
    seal_image: bytes | None
    signature_image: bytes | None
    reason: str
    #: The time for the local TSA (the service clock), or None for the system's.
    at: dt.datetime | None = None
    #: Files embedded in the document before it is certified (a case file's originals).
    files: tuple[EmbeddedFile, ...] = ()


@dataclass(frozen=True)
class SignBatch:
    """Documents of one merged conversion, for one worker."""

    pdf: bytes
    tasks: list[SignTask]


@dataclass(frozen=True)
class FinishedDocument:
    pdf: bytes
    split_seconds: float
    stamp_seconds: float
    sign_seconds: float


def finish_batch(batch: SignBatch, signing: SigningEngine) -> list[FinishedDocument]:
    """Cut each document out of the merged PDF with its stamp, then certify it; the same function
    runs in this process or in a worker."""
    signatory = signing.signatory
    if not batch.tasks:
        return []
    t0 = time.perf_counter()
    times: dict[str, float] = {}
    dressing = 0.0
    appearances: dict[int, Appearance] = {}
    # a batch's documents share their issuer's images: each decoded once, then kept for certifying
    open_image = functools.lru_cache(maxsize=8)(_open_image)

    def dress_task(i: int, doc: Any) -> None:
        nonlocal dressing
        t = time.perf_counter()
        task = batch.tasks[i]
        appearances[i] = Appearance(task.seal_name, open_image(task.seal_image), open_image(task.signature_image))
        for f in task.files:
            doc.attachments[f.name] = pikepdf.AttachedFileSpec(
                doc, f.data, description=f.description, filename=f.name, mime_type=f.mime_type
            )
        dress(
            doc,
            signatory=signatory,
            unit_key=task.unit_key,
            placements=task.placements,
            appearance=appearances[i],
            appearance_id=appearance_key(task.seal_name, task.seal_image, task.signature_image),
        )
        dressing += time.perf_counter() - t

    pieces = split_and_stamp(batch.pdf, [(t.pages, t.mark) for t in batch.tasks], times, dress_task)
    stamp_each = times.get("stamp", 0.0) / len(batch.tasks)
    dress_each = dressing / len(batch.tasks)
    split_each = (time.perf_counter() - t0) / len(batch.tasks) - stamp_each - dress_each  # fonts included
    out = []
    for i, (task, piece) in enumerate(zip(batch.tasks, pieces, strict=True)):
        t1 = time.perf_counter()
        with signatory.timestamped_at(task.at):
            signed = signing.certify(
                piece,
                unit_key=task.unit_key,
                placement=task.placements[0],
                appearance=appearances[i],
                reason=task.reason,
            )
        out.append(FinishedDocument(signed, split_each, stamp_each, time.perf_counter() - t1 + dress_each))
    return out


_WORKER: SigningEngine | None = None


def _init_worker(settings: dict[str, Any]) -> None:
    """A worker process's own keys, TSA and signing engine, loaded once."""
    global _WORKER
    s = Settings(**settings)
    pki = Pki.from_settings(s)
    _WORKER = signing_engine(s.signing_engine, Signatory(pki, s.tsa_url))


def _ready() -> bool:
    return _WORKER is not None


def _run_batch(batch: SignBatch) -> list[FinishedDocument]:
    assert _WORKER is not None, "worker not initialised"
    return finish_batch(batch, _WORKER)


@dataclass(frozen=True)
class _Prepared:
    kind: DocumentKind
    request: IssueRequest
    fields: dict[str, Any]
    code: str
    issuer_key: str
    issuer_name: str


def _joined(pdf: bytes, appendix: bytes | None) -> bytes:
    """``pdf`` with ``appendix``'s pages after its own (its named destinations kept)."""
    if appendix is None:
        return pdf
    with pikepdf.open(io.BytesIO(pdf)) as doc, pikepdf.open(io.BytesIO(appendix)) as more:
        doc.pages.extend(more.pages)
        out = io.BytesIO()
        doc.save(out)
        return out.getvalue()


def read_fields_file(path: Path) -> Any:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FieldsInvalid(f"找不到字段文件 {path}。") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FieldsInvalid(f"字段文件 {path.name} 不是有效的 UTF-8 JSON：{exc}") from exc
