"""The Hub's rules for large files, as the fake Hub applies them (see hub_server.py).

- Which files are LFS: a path matching a `filter=lfs` pattern of the revision's `.gitattributes`
  (the Hub's default one for model repos lists `*.safetensors`, `*.bin`, ...), or any file of
  10 MiB or more (the Hub refuses larger regular files in a commit).
- The ids the Hub reports: a regular file's oid is its git blob sha1; an LFS file's is the sha256
  of its content, and its git blob is the pointer file.
- The LFS batch API (git-lfs `objects/batch`, basic transfer): an upload answer per object with an
  `upload` action (a presigned PUT) and a `verify` action, or no actions when the Hub already
  holds the object.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json

REGULAR_MAX_BYTES = 10 * 1024 * 1024
# The start of the .gitattributes the Hub writes into every new model repo.
DEFAULT_GITATTRIBUTES = b"""*.7z filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.ckpt filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.model filter=lfs diff=lfs merge=lfs -text
*.npy filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.pkl filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
*.tar.* filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
*tfevents* filter=lfs diff=lfs merge=lfs -text
"""


def lfs_patterns(gitattributes: bytes) -> list[str]:
    patterns = []
    for line in gitattributes.decode("utf-8", "replace").splitlines():
        parts = line.split()
        if parts and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    return patterns


def is_lfs(path: str, size: int, gitattributes: bytes) -> bool:
    """Whether the Hub stores `path` through LFS (preupload answers 'lfs')."""
    if size >= REGULAR_MAX_BYTES:
        return True
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(path if "/" in p else name, p) for p in lfs_patterns(gitattributes))


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def pointer_file(data: bytes) -> bytes:
    oid = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n".encode()


def _batch_answer(objects: list[dict], stored: dict[str, bytes], upload_href, verify_href, auth: str) -> dict:
    """The LFS batch API's answer to an upload request for `objects` ({oid, size})."""
    answers = []
    for obj in objects:
        oid, size = obj["oid"], obj["size"]
        if oid in stored and len(stored[oid]) == size:
            answers.append({"oid": oid, "size": size})  # already there: nothing to do
            continue
        answers.append({
            "oid": oid, "size": size, "authenticated": True,
            "actions": {
                "upload": {"href": upload_href(oid), "expires_at": "2099-01-01T00:00:00Z"},
                "verify": {"href": verify_href, "header": {"Authorization": auth}},
            },
        })
    return {"transfer": "basic", "objects": answers}


class LfsRoutes:
    """The fake Hub's LFS endpoints, mixed into its request handler (which sets `fake`)."""

    fake = None  # the FakeHub

    def _lfs_api(self, repo_id: str, action: str, data: dict) -> None:
        """POST {repo}.git/info/lfs/objects/{batch,verify}: write access needed, as on the Hub."""
        hub = self.fake
        repo = hub.repos.get(repo_id)
        if repo is None:
            return self._error(404, "Repository not found", "RepoNotFound")
        if not hub._owner(self.headers):
            return self._write_denied()
        if action == "verify":
            oid, size = data["oid"], data["size"]
            # Idempotent, as LFS verify is: a client that lost the first answer asks again.
            blob = hub._lfs_uploaded.pop(oid, None) or hub.lfs_objects.get(oid)
            if blob is None or len(blob) != size or hashlib.sha256(blob).hexdigest() != oid:
                return self._error(422, f"LFS object {oid} was not uploaded intact")
            hub.lfs_objects[oid] = blob
            return self._json(200, {"success": True})
        if data.get("operation") != "upload" or "basic" not in data.get("transfers", ["basic"]):
            return self._error(422, "only basic uploads are supported")
        answer = _batch_answer(
            data["objects"], hub.lfs_objects,
            upload_href=lambda oid: f"{hub.cdn_url}/lfs-upload/{oid}",
            verify_href=f"{hub.url}/{repo_id}.git/info/lfs/objects/verify",
            auth=self.headers.get("authorization") or "",
        )
        self._send(200, json.dumps(answer).encode(), {"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_redirect(self, repo_id: str, sha: str, file: str, data: bytes, head: bool) -> None:
        """As the Hub answers /resolve for an LFS file: a redirect to the CDN, with the linked file's size
        and etag, and the xet headers of an xet-backed file (a client with xet on would go to the CAS)."""
        hub = self.fake
        oid = hashlib.sha256(data).hexdigest()
        hub._lfs_names[oid] = file
        self._send(302, b"", {
            "Location": f"{hub.cdn_url}/lfs-cdn/{oid}",
            "X-Repo-Commit": sha,
            "ETag": f'"{git_blob_sha1(pointer_file(data))}"',
            "X-Linked-Etag": f'"{oid}"',
            "X-Linked-Size": hub.lie_size.get(file, len(data)),
            "X-Xet-Hash": hashlib.sha256(b"xet" + data).hexdigest(),
            "Link": f'<{hub.url}/api/models/{repo_id}/xet-read-token/{sha}>; rel="xet-auth"',
        }, head=head)
