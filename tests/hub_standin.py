"""A local stand-in for the Hugging Face Hub, serving one dataset repository from a folder.

It answers the requests that ``huggingface_hub.snapshot_download`` and ``HfApi.dataset_info`` make
(repo info with file sizes, recursive tree listing, file resolve with HEAD and GET), so tests run the
real client code offline. Revisions: ``main`` (and ``COMMIT`` itself) resolve to ``COMMIT``; more
can be given as ``revisions={name: commit}`` (every revision serves the same files); others are
answered with the Hub's RevisionNotFound.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubStandIn:
    """Serve ``folder`` as dataset ``repo_id`` at ``self.endpoint``; records requested paths."""

    def __init__(self, folder: Path, repo_id: str, revisions: dict | None = None):
        self.folder = Path(folder)
        self.repo_id = repo_id
        self.revisions = {"main": COMMIT, COMMIT: COMMIT, **(revisions or {})}
        self.revisions.update({c: c for c in list(self.revisions.values())})
        self.requests: list[str] = []
        handler = type("Handler", (_Handler,), {"hub": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def files(self) -> list[str]:
        return sorted(p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*") if p.is_file())


class _Handler(BaseHTTPRequestHandler):
    hub: HubStandIn

    def log_message(self, *args):  # keep test output quiet
        pass

    def _json(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _not_found(self):
        self.send_response(404)
        self.send_header("X-Error-Code", "EntryNotFound")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _no_revision(self):
        self.send_response(404)
        self.send_header("X-Error-Code", "RevisionNotFound")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _file(self, relpath: str, with_body: bool, commit: str):
        path = self.hub.folder / relpath
        if not path.is_file():
            return self._not_found()
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("X-Repo-Commit", commit)
        self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if with_body:
            self.wfile.write(data)

    def _route(self, with_body: bool):
        path = unquote(urlparse(self.path).path)
        self.hub.requests.append(path)
        repo = f"/datasets/{self.hub.repo_id}/"
        api = f"/api/datasets/{self.hub.repo_id}/"
        if path.startswith(api + "revision/") or path == api.rstrip("/"):
            rev = path[len(api + "revision/"):] if path.startswith(api + "revision/") else "main"
            if rev not in self.hub.revisions:
                return self._no_revision()
            return self._json({"id": self.hub.repo_id, "sha": self.hub.revisions[rev], "private": False,
                               "siblings": [{"rfilename": f, "size": (self.hub.folder / f).stat().st_size}
                                            for f in self.hub.files()]})
        if path.startswith(api + "tree/"):
            entries = []
            for f in self.hub.files():
                data = (self.hub.folder / f).read_bytes()
                entries.append({"type": "file", "path": f, "size": len(data),
                                "oid": hashlib.sha1(data).hexdigest()})
            return self._json(entries)
        if path.startswith(repo + "resolve/"):
            rev, relpath = path[len(repo + "resolve/"):].split("/", 1)
            if rev not in self.hub.revisions:
                return self._no_revision()
            return self._file(relpath, with_body, self.hub.revisions[rev])
        return self._not_found()

    def do_GET(self):
        self._route(with_body=True)

    def do_HEAD(self):
        self._route(with_body=False)
