"""A local stand-in for the Hub endpoints `HfApi.list_repo_tree`, `repo_info` and `HfFileSystem` reads use,
serving one dataset repo of real parquet files built like FineWeb's (same columns, 1,000-row groups).

- GET /api/datasets/{repo}/revision/{rev}           repo_info: id, sha (a branch resolves to its commit)
- GET /api/datasets/{repo}/tree/{rev}/{path}        recursive listing, 1,000 entries a page, Link: rel="next"
- GET /datasets/{repo}/resolve/{rev}/{path}         Range (bytes=a-b, a-, -n) -> 206 + Content-Range
Faults per file, consumed one per GET: "500", "429" (Retry-After: retry_after), "drip" (one byte every
drip_interval_s). `publish` adds files as a new commit on main, as when FineWeb gains a dump.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import re
import threading
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
from aiohttp import web

from subnet.data.synthetic import generate_text

REPO = "HuggingFaceFW/fineweb"
FINEWEB_ROW_GROUP = 1_000  # rows per row group in FineWeb's files (datatrove writes 1,000-document batches)


def fineweb_parquet(dump: str, file_index: int, rows: int, row_group_size: int = FINEWEB_ROW_GROUP) -> bytes:
    """A parquet file with FineWeb's columns; texts generated from (dump, file, row)."""
    texts = [generate_text(f"parquet-fineweb/{dump}/{file_index}/{i}") for i in range(rows)]
    table = pa.table({
        "text": texts,
        "id": [f"<urn:uuid:{dump}-{file_index}-{i}>" for i in range(rows)],
        "dump": [dump] * rows,
        "url": [f"https://example.org/{dump}/{file_index}/{i}" for i in range(rows)],
        "date": ["2024-02-21T12:00:00Z"] * rows,
        "file_path": [f"s3://commoncrawl/crawl-data/{dump}/segments/{file_index}.warc.gz"] * rows,
        "language": ["en"] * rows,
        "language_score": [0.9] * rows,
        "token_count": [len(t) // 4 for t in texts],
    })
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group_size, compression="snappy")
    return sink.getvalue()


def fineweb_files(dumps: dict[str, int], rows_per_file: int, row_group_size: int = FINEWEB_ROW_GROUP
                  ) -> dict[str, bytes]:
    """{"data/<dump>/000_0000i.parquet": bytes} for `dumps` = {dump: number of files}."""
    return {f"data/{dump}/000_{i:05d}.parquet": fineweb_parquet(dump, i, rows_per_file, row_group_size)
            for dump, n in dumps.items() for i in range(n)}


@dataclass
class FakeParquetHub:
    files: dict[str, bytes]  # the first commit of main
    repo: str = REPO
    latency_s: float = 0.0
    retry_after: str = "1"
    drip_interval_s: float = 0.2
    tree_page_size: int = 1000
    faults: dict[str, list[str]] = field(default_factory=dict)
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    main: str = ""
    requests: Counter = field(default_factory=Counter)  # "tree", "revision", "resolve:<path>"
    bytes_served: int = 0
    url: str = ""

    def __post_init__(self) -> None:
        self.publish(self.files)

    def publish(self, files: dict[str, bytes]) -> str:
        """A new commit on main with these files added (or replaced)."""
        merged = {**self.commits.get(self.main, {}), **files}
        h = hashlib.sha1(self.main.encode())
        for path in sorted(merged):
            h.update(path.encode() + hashlib.sha1(merged[path]).digest())
        self.main = h.hexdigest()
        self.commits[self.main] = merged
        return self.main

    def _commit(self, rev: str) -> str | None:
        return self.main if rev == "main" else rev if rev in self.commits else None

    @staticmethod
    def _error(status: int, message: str, code: str | None = None, headers: dict | None = None) -> web.Response:
        extra = {"X-Error-Code": code} if code else {}
        return web.json_response({"error": message}, status=status,
                                 headers={"X-Error-Message": message, **extra, **(headers or {})})

    async def revision(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.latency_s)
        self.requests["revision"] += 1
        if request.match_info["repo"] != self.repo:
            return self._error(404, "Repository not found", "RepoNotFound")
        sha = self._commit(request.match_info["rev"])
        if sha is None:
            return self._error(404, f"Invalid rev id: {request.match_info['rev']}", "RevisionNotFound")
        return web.json_response({"id": self.repo, "sha": sha, "private": False, "disabled": False,
                                  "siblings": [{"rfilename": p} for p in sorted(self.commits[sha])]})

    async def tree(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.latency_s)
        self.requests["tree"] += 1
        sha = self._commit(request.match_info["rev"])
        if request.match_info["repo"] != self.repo or sha is None:
            return self._error(404, "Repository or revision not found", "RevisionNotFound")
        prefix = request.match_info["path"].strip("/")
        recursive = request.query.get("recursive", "False").lower() == "true"
        entries, folders = [], set()
        for path, data in sorted(self.commits[sha].items()):
            if prefix and not path.startswith(prefix + "/"):
                continue
            rest = path[len(prefix) + 1:] if prefix else path
            if not recursive and "/" in rest:
                folders.add(f"{prefix}/{rest.split('/')[0]}" if prefix else rest.split("/")[0])
                continue
            if recursive:
                parts = path.split("/")
                folders.update("/".join(parts[:i]) for i in range(len(prefix.split("/")) + 1 if prefix else 1, len(parts)))
            entries.append({"type": "file", "oid": hashlib.sha1(data).hexdigest(), "size": len(data), "path": path,
                            "lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}})
        entries += [{"type": "directory", "oid": hashlib.sha1(f.encode()).hexdigest(), "path": f} for f in folders]
        entries.sort(key=lambda e: e["path"])
        start = int(request.query.get("cursor", "0"))
        page = entries[start:start + self.tree_page_size]
        headers = {}
        if start + self.tree_page_size < len(entries):
            nxt = request.url.update_query(cursor=str(start + self.tree_page_size))
            headers["Link"] = f'<{nxt}>; rel="next"'
        return web.json_response(page, headers=headers)

    async def resolve(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(self.latency_s)
        path = request.match_info["path"]
        self.requests[f"resolve:{path}"] += 1
        sha = self._commit(request.match_info["rev"])
        if request.match_info["repo"] != self.repo or sha is None:
            return self._error(404, "Repository or revision not found", "RevisionNotFound")
        data = self.commits[sha].get(path)
        if data is None:
            return self._error(404, "Entry not found", "EntryNotFound")
        script = self.faults.get(path)
        fault = script.pop(0) if script else None
        if fault == "500":
            return self._error(500, "injected server error")
        if fault == "429":
            return self._error(429, "Too Many Requests", headers={"Retry-After": self.retry_after})
        start, end, status = 0, len(data) - 1, 200
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", request.headers.get("Range", ""))
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start, end = int(m.group(1)), min(int(m.group(2) or len(data) - 1), len(data) - 1)
            else:
                start = max(0, len(data) - int(m.group(2)))
            if start > end:
                return self._error(416, "Range Not Satisfiable", headers={"Content-Range": f"bytes */{len(data)}"})
            status = 206
        chunk = data[start:end + 1]
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", "X-Repo-Commit": sha,
                   "ETag": f'"{hashlib.sha256(data).hexdigest()}"', "Content-Length": str(len(chunk))}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        self.bytes_served += len(chunk)
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        if fault == "drip":
            for i in range(len(chunk)):
                await response.write(chunk[i:i + 1])
                await asyncio.sleep(self.drip_interval_s)
        else:
            await response.write(chunk)
        await response.write_eof()
        return response

    def app(self) -> web.Application:
        app = web.Application()
        repo = r"{repo:[^/]+/[^/]+}"
        app.router.add_get(f"/api/datasets/{repo}/revision/{{rev}}", self.revision)
        app.router.add_get(f"/api/datasets/{repo}/tree/{{rev}}{{path:(/.*)?}}", self.tree)
        app.router.add_route("GET", f"/datasets/{repo}/resolve/{{rev}}/{{path:.+}}", self.resolve)
        return app


@contextlib.contextmanager
def running_parquet_hub(files: dict[str, bytes], **kwargs):
    """Serve a FakeParquetHub on 127.0.0.1 (ephemeral port) from a background thread."""
    hub = FakeParquetHub(files, **kwargs)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(hub.app(), access_log=None, shutdown_timeout=0.5)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        hub.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    try:
        yield hub
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
