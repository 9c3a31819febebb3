"""Ingest jobs: ``POST /v1/ingest`` (paths under the allowed roots), ``POST /v1/ingest/upload``
(files in the request) and ``GET /v1/jobs/{job_id}``. Jobs run in the background, one writer."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from fastapi.concurrency import run_in_threadpool
from srekb.api.deps import KB, AppSettings, Auth, Jobs
from srekb.api.errors import ApiError
from srekb.api.schemas import IngestRequest, JobOut
from srekb.api.state import upload_dir
from srekb.retrieval import SourceType

router = APIRouter(dependencies=[Auth])

MAX_UPLOAD_FILES = 50
MAX_NAME = 255  # bytes in a file name on every common file system


def safe_name(name: str) -> str:
    """A file name from an upload, stripped of any directory part; refuses empty, hidden or over-long names."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name.replace("\\", "/")).name)
    if not base or base.startswith("."):
        raise ApiError(400, "invalid_upload", f"unusable file name {name[:200]!r}")
    if len(base) > MAX_NAME:
        raise ApiError(400, "invalid_upload", f"the file name is {len(base)} characters, over the {MAX_NAME}-character limit: rename it")
    return base


@router.post("/v1/ingest", response_model=JobOut, status_code=202)
async def ingest(body: IngestRequest, jobs: Jobs, settings: AppSettings) -> dict[str, Any]:
    roots = [Path(r) for r in settings.allowed_roots]
    if not roots:
        raise ApiError(403, "forbidden", "ingest by path is disabled: set SRE_KB_ALLOWED_ROOTS to the directories it may read")
    paths = [Path(p) for p in body.paths]
    for p in paths:
        try:
            real = p.resolve()
            inside = any(real == r.resolve() or r.resolve() in real.parents for r in roots)
            exists = inside and real.exists()
        except (OSError, ValueError, RuntimeError) as exc:  # NUL bytes, over-long names, symlink loops (RuntimeError before 3.13)
            raise ApiError(400, "invalid_path", f"unusable path {str(p)[:200]!r}: {str(exc)[:200]}") from exc
        if not inside:
            raise ApiError(403, "forbidden", f"{str(p)[:200]} is outside the allowed roots ({', '.join(map(str, roots))})")
        if not exists:
            raise ApiError(404, "not_found", f"no such file or directory: {str(p)[:200]}")
    job = jobs.submit(paths, source_type=SourceType(body.source_type) if body.source_type else None,
                      allowed_roots=roots, delete_missing=body.delete_missing)
    return job.to_dict()


@router.post("/v1/ingest/upload", response_model=JobOut, status_code=202)
async def ingest_upload(kb: KB, jobs: Jobs, settings: AppSettings,
                        files: Annotated[list[UploadFile], File(description="documents to ingest")]) -> dict[str, Any]:
    if len(files) > MAX_UPLOAD_FILES:
        raise ApiError(413, "too_large", f"at most {MAX_UPLOAD_FILES} files per upload")
    target = upload_dir(settings)
    target.mkdir(parents=True, exist_ok=True)
    total = sum(f.size or 0 for f in files)
    if total > settings.max_upload_bytes:
        raise ApiError(413, "too_large", f"the upload is {total:,} bytes, over the {settings.max_upload_bytes:,}-byte limit")
    names = [safe_name(f.filename or "") for f in files]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # the last would silently win, and the report would say "added" twice
        raise ApiError(400, "invalid_upload", f"two files named {twice[0]} in one upload: rename one, or upload them separately")
    known = await run_in_threadpool(kb.store.sources)
    for name in names:
        rec = known.get(name)
        if rec is not None and Path(rec.root).resolve() != target.resolve():
            raise ApiError(409, "conflict", f"{name} is already ingested from {rec.root}: an upload of the same name would replace it; "
                           "rename the upload, or re-ingest that folder")
    blobs = []
    for f, name in zip(files, names, strict=True):
        data = await f.read(settings.max_file_bytes + 1)
        if len(data) > settings.max_file_bytes:
            raise ApiError(413, "too_large", f"{name} is over the {settings.max_file_bytes:,}-byte limit")
        blobs.append((target / name, data))
    for path, data in blobs:  # written only once the whole upload is accepted: a refused upload leaves nothing on disk
        path.write_bytes(data)
    job = jobs.submit([p for p, _ in blobs], delete_missing=False)
    return job.to_dict()


@router.get("/v1/jobs/{job_id}", response_model=JobOut)
async def job_status(job_id: str, jobs: Jobs) -> dict[str, Any]:
    job = jobs.get(job_id)
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id!r}: job ids come from POST /v1/ingest")
    return job.to_dict()
