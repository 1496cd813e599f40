"""A local stand-in for the part of the Hugging Face Hub API that `huggingface_hub` 2.4 calls.

It runs in a thread on 127.0.0.1 (ephemeral port) so the real client code runs unchanged:

- POST /api/repos/create                          create_repo (409 + url when it exists)
- GET  /api/models/{repo}[/revision/{rev}]        model_info (siblings with sizes and `lfs` when blobs=True)
- POST /api/models/{repo}/preupload/{rev}         "lfs" per .gitattributes or >= 10 MiB, else "regular";
                                                  the remote oid of files that exist, so unchanged ones are skipped
- POST /{repo}.git/info/lfs/objects/batch         LFS batch API, basic transfer: upload + verify actions
- PUT  /lfs-upload/{oid}                          the presigned upload (no auth, like S3)
- POST /{repo}.git/info/lfs/objects/verify        checks the uploaded object's sha256 and size
- POST /api/models/{repo}/commit/{rev}            ndjson commit: header, file (<10 MiB), lfsFile, deletedFile
- PUT  /api/models/{repo}/settings                visibility
- POST /api/validate-yaml                         README metadata check
- HEAD/GET /{repo}/resolve/{rev}/{path}           regular files: X-Repo-Commit, ETag, Content-Length, Range.
                                                  LFS files: 302 to a CDN on another host name (localhost),
                                                  with X-Linked-Size / X-Linked-Etag and the xet headers the
                                                  Hub sends for xet-backed files (X-Xet-Hash, Link rel=xet-auth)
- GET  /lfs-cdn/{oid}                             the CDN: the bytes, Range, no auth
- GET  /api/models/{repo}/xet-{read,write}-token  501: this fake has no xet CAS, so a client that takes
                                                  the xet path fails loudly (counted in `requests`)

Faults for tests: `fail_next(prefix, *statuses, headers=...)` answers the next requests whose path
starts with `prefix` with those statuses (and headers, e.g. Retry-After); `lie_size[path] = n`
reports n bytes in listings and HEAD while GET serves the real bytes; `cut_off[path] = k` closes
the connection halfway through the next k GETs. Private repos answer 401 unless the request carries
`Bearer <owner_token>`; every write (create, preupload's commit, LFS batch and verify, settings)
needs it too: 401 without a token, 403 with another one (a read-only token).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

from tests.fakes.hub_lfs import (
    DEFAULT_GITATTRIBUTES,
    REGULAR_MAX_BYTES,
    LfsRoutes,
    git_blob_sha1,
    is_lfs,
    pointer_file,
)


@dataclass
class FakeRepo:
    private: bool
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    lfs: dict[str, set[str]] = field(default_factory=dict)  # commit -> paths stored through LFS
    main: str = ""

    def commit(self, parent: str, files: dict[str, bytes], lfs: set[str], message: str) -> str:
        sha = _commit_id(parent, files, message)
        self.commits[sha] = files
        self.lfs[sha] = lfs & set(files)
        self.main = sha
        return sha


def _commit_id(parent: str, files: dict[str, bytes], message: str) -> str:
    h = hashlib.sha1(parent.encode() + message.encode())
    for path in sorted(files):
        h.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
    return h.hexdigest()


class FakeHub:
    def __init__(self, owner_token: str = "hf_owner") -> None:
        self.owner_token = owner_token
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[tuple[str, str]] = []
        self.lie_size: dict[str, int] = {}
        self.cut_off: dict[str, int] = {}
        self.ranges: list[tuple[str, str | None]] = []  # (file, Range header) of every file GET
        self.lfs_objects: dict[str, bytes] = {}  # verified LFS store, by sha256
        self._lfs_uploaded: dict[str, bytes] = {}  # PUT but not yet verified
        self._lfs_names: dict[str, str] = {}  # oid -> repo path, so faults keyed by path apply on the CDN
        self._faults: list[tuple[str, int, dict]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=lambda: self._server.serve_forever(poll_interval=0.05), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ test helpers

    @property
    def cdn_url(self) -> str:
        """The same server under another host name, so the client treats it as a CDN, as on the Hub."""
        return f"http://localhost:{self._server.server_address[1]}"

    def add_repo(self, repo_id: str, files: dict[str, bytes], *, private: bool = False) -> str:
        """Create a repo holding `files` in one commit (as a git-lfs push would store them); returns the commit."""
        repo = self.repos.setdefault(repo_id, FakeRepo(private=private))
        base = dict(repo.commits.get(repo.main, {".gitattributes": DEFAULT_GITATTRIBUTES}))
        base.update(files)
        lfs = {p for p, d in base.items() if is_lfs(p, len(d), base[".gitattributes"])}
        for p in lfs:
            self.lfs_objects[hashlib.sha256(base[p]).hexdigest()] = base[p]
        return repo.commit(repo.main, base, lfs, "seed")

    def fail_next(self, prefix: str, *statuses: int, headers: dict | None = None) -> None:
        with self._lock:
            self._faults.extend((prefix, s, dict(headers or {})) for s in statuses)

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.startswith(prefix))

    # ------------------------------------------------------------------ request handling

    def _take_fault(self, path: str) -> tuple[int, dict] | None:
        with self._lock:
            for i, (prefix, status, headers) in enumerate(self._faults):
                if path.startswith(prefix):
                    del self._faults[i]
                    return status, headers
        return None

    def _resolve(self, repo: FakeRepo, rev: str) -> str | None:
        if rev == "main":
            return repo.main or None
        matches = [c for c in repo.commits if c.startswith(rev)] if len(rev) >= 7 else []
        return matches[0] if len(matches) == 1 else None

    def _visible(self, repo: FakeRepo, headers) -> bool:
        return not repo.private or self._owner(headers)

    def _owner(self, headers) -> bool:
        return headers.get("authorization") == f"Bearer {self.owner_token}"

    def _handler(self):
        hub = self

        class Handler(LfsRoutes, BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            fake = hub

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, str(v))
                if "Content-Length" not in (headers or {}):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _json(self, status: int, data, headers: dict | None = None) -> None:
                self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})

            def _error(self, status: int, message: str, code: str | None = None, head: bool = False,
                       extra: dict | None = None) -> None:
                headers = {"Content-Type": "application/json", "X-Error-Message": message, **(extra or {})}
                if code:
                    headers["X-Error-Code"] = code
                self._send(status, json.dumps({"error": message}).encode(), headers, head=head)

            def _write_denied(self) -> None:
                """As the Hub: 401 without a token, 403 for a token without write access here."""
                if not self.headers.get("authorization"):
                    return self._error(401, "Invalid username or password.")
                self._error(403, "You don't have the rights to write to this namespace")

            def _body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _dispatch(self, method: str) -> None:
                url = urlparse(self.path)
                path = unquote(url.path)
                hub.requests.append((method, path))
                body = self._body() if method in ("POST", "PUT") else b""
                fault = hub._take_fault(path)
                if fault is not None:
                    status, headers = fault
                    return self._error(status, f"injected {status}", head=method == "HEAD", extra=headers)
                query = parse_qs(url.query)
                try:
                    self._route(method, path, query, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _route(self, method: str, path: str, query: dict, body: bytes) -> None:
                if method == "POST" and path == "/api/repos/create":
                    if not hub._owner(self.headers):
                        return self._write_denied()
                    return self._create(json.loads(body))
                if method == "POST" and path == "/api/validate-yaml":
                    return self._json(200, {"errors": [], "warnings": []})
                m = re.match(r"^/api/models/([^/]+/[^/]+)/xet-(read|write)-token/", path)
                if m:
                    return self._error(501, "this fake Hub has no xet storage; the client must not take the xet path")
                m = re.match(r"^/api/models/([^/]+/[^/]+)(?:/(revision|preupload|commit|settings)(?:/(.+))?)?$", path)
                if m:
                    return self._api(method, m.group(1), m.group(2), m.group(3), query, body)
                m = re.match(r"^/([^/]+/[^/]+)\.git/info/lfs/objects/(batch|verify)$", path)
                if m and method == "POST":
                    return self._lfs_api(m.group(1), m.group(2), json.loads(body))
                m = re.match(r"^/lfs-upload/([0-9a-f]{64})$", path)
                if m and method == "PUT":
                    hub._lfs_uploaded[m.group(1)] = body
                    return self._send(200)
                m = re.match(r"^/lfs-cdn/([0-9a-f]{64})$", path)
                if m and method in ("GET", "HEAD") and m.group(1) in hub.lfs_objects:
                    oid = m.group(1)
                    return self._serve(method, hub._lfs_names.get(oid, oid), hub.lfs_objects[oid], {"ETag": f'"{oid}"'})
                m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
                if m and method in ("GET", "HEAD"):
                    return self._resolve_file(method, m.group(1), m.group(2), m.group(3))
                self._error(404, f"no route for {method} {path}")

            def _create(self, data: dict) -> None:
                repo_id = f"{data['organization']}/{data['name']}"
                url = f"{hub.url}/{repo_id}"
                if repo_id in hub.repos:
                    return self._json(409, {"error": "You already created this model repo", "url": url})
                repo = hub.repos[repo_id] = FakeRepo(private=data.get("visibility") == "private")
                repo.commit("", {".gitattributes": DEFAULT_GITATTRIBUTES}, set(), "initial commit")
                self._json(200, {"url": url, "name": repo_id})

            def _api(self, method, repo_id, action, rev, query, body) -> None:
                repo = hub.repos.get(repo_id)
                head = method == "HEAD"
                if repo is None:
                    return self._error(404, "Repository not found", "RepoNotFound", head=head)
                if not hub._visible(repo, self.headers):
                    return self._error(401, "Repository not found or private", head=head)
                if action == "settings" and method == "PUT":
                    if not hub._owner(self.headers):
                        return self._write_denied()
                    visibility = json.loads(body).get("visibility")
                    if visibility in ("public", "private"):
                        repo.private = visibility == "private"
                    return self._json(200, {})
                if action == "preupload" and method == "POST":
                    sha = hub._resolve(repo, rev or "main")
                    if sha is None:
                        return self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
                    current = repo.commits[sha]
                    answers = []
                    for f in json.loads(body)["files"]:
                        lfs = is_lfs(f["path"], f["size"], current.get(".gitattributes", b""))
                        answer = {"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
                        if f["path"] in current:
                            data = current[f["path"]]
                            in_lfs = f["path"] in repo.lfs[sha]
                            answer["oid"] = hashlib.sha256(data).hexdigest() if in_lfs else git_blob_sha1(data)
                        answers.append(answer)
                    return self._json(200, {"files": answers})
                if action == "commit" and method == "POST":
                    return self._commit(repo_id, repo, rev or "main", body)
                if method == "GET" and action in (None, "revision"):
                    sha = hub._resolve(repo, rev or "main")
                    if sha is None:
                        return self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
                    files = repo.commits[sha]
                    siblings = []
                    for p, data in sorted(files.items()):
                        entry = {"rfilename": p}
                        if query.get("blobs") in (["True"], ["true"], ["1"]):
                            size = hub.lie_size.get(p, len(data))
                            entry["size"] = size
                            if p in repo.lfs[sha]:
                                pointer = pointer_file(data)
                                entry["blobId"] = git_blob_sha1(pointer)
                                entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": size,
                                                "pointerSize": len(pointer)}
                            else:
                                entry["blobId"] = git_blob_sha1(data)
                        siblings.append(entry)
                    return self._json(200, {"id": repo_id, "sha": sha, "private": repo.private, "siblings": siblings})
                self._error(405, f"{method} {action} not supported by the fake")

            def _commit(self, repo_id: str, repo: FakeRepo, rev: str, body: bytes) -> None:
                parent = hub._resolve(repo, rev)
                if parent is None:
                    return self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
                if not hub._owner(self.headers):
                    return self._write_denied()
                files = dict(repo.commits[parent])
                lfs = set(repo.lfs[parent])
                message = ""
                for line in body.splitlines():
                    item = json.loads(line)
                    value = item["value"]
                    if item["key"] == "header":
                        message = value.get("summary", "")
                    elif item["key"] == "file":
                        content = base64.b64decode(value["content"])
                        if len(content) >= REGULAR_MAX_BYTES:
                            return self._error(400, f"{value['path']} is over 10 MiB: upload it through LFS")
                        files[value["path"]] = content
                        lfs.discard(value["path"])
                    elif item["key"] == "lfsFile":
                        blob = hub.lfs_objects.get(value["oid"])
                        if blob is None or ("size" in value and value["size"] != len(blob)):
                            return self._error(422, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                        files[value["path"]] = blob
                        lfs.add(value["path"])
                    elif item["key"] in ("deletedFile", "deletedFolder"):
                        files = {p: d for p, d in files.items() if p != value["path"] and not p.startswith(value["path"] + "/")}
                    else:
                        return self._error(400, f"fake hub does not support {item['key']}")
                sha = repo.commit(parent, files, lfs, message)
                self._json(200, {"commitOid": sha, "commitUrl": f"{hub.url}/{repo_id}/commit/{sha}", "success": True})

            def _resolve_file(self, method: str, repo_id: str, rev: str, file: str) -> None:
                head = method == "HEAD"
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return self._error(404, "Repository not found", "RepoNotFound", head=head)
                if not hub._visible(repo, self.headers):
                    return self._error(401, "Repository not found or private", head=head)
                sha = hub._resolve(repo, rev)
                if sha is None:
                    return self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound", head=head)
                data = repo.commits[sha].get(file)
                if data is None:
                    return self._error(404, "Entry not found", "EntryNotFound", head=head)
                if file in repo.lfs[sha]:
                    return self._lfs_redirect(repo_id, sha, file, data, head)
                headers = {"X-Repo-Commit": sha, "ETag": f'"{git_blob_sha1(data)}"'}
                if head:
                    headers.update({"Content-Length": hub.lie_size.get(file, len(data)), "Accept-Ranges": "bytes"})
                    return self._send(200, b"", headers, head=True)
                self._serve(method, file, data, headers)

            def _serve(self, method: str, file: str, data: bytes, headers: dict) -> None:
                """The bytes of `file` with Range support and the test's faults (lie_size, cut_off)."""
                headers = {**headers, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
                if method == "HEAD":
                    headers["Content-Length"] = hub.lie_size.get(file, len(data))
                    return self._send(200, b"", headers, head=True)
                start = 0
                range_header = self.headers.get("Range")
                hub.ranges.append((file, range_header))
                status = 200
                if range_header and (m := re.match(r"bytes=(\d+)-$", range_header)):
                    start = int(m.group(1))
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                chunk = data[start:]
                headers["Content-Length"] = len(chunk)
                with hub._lock:
                    cut = hub.cut_off.get(file, 0)
                    if cut:
                        hub.cut_off[file] = cut - 1
                if cut:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, str(v))
                    self.end_headers()
                    self.wfile.write(chunk[: len(chunk) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self._send(status, chunk, headers)

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_HEAD(self) -> None:
                self._dispatch("HEAD")

            def do_POST(self) -> None:
                self._dispatch("POST")

            def do_PUT(self) -> None:
                self._dispatch("PUT")

        return Handler
