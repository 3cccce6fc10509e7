#!/usr/bin/env python3
"""A local stand-in for the Hugging Face Hub, for kexa's pull tests (loopback only).

Serves every folder ROOT/ORG/REPO as a model repository at revision "main" with the hub's URL
layout and headers:
  GET  /api/models/ORG/REPO/revision/REV[?blobs=true]  -> {"id", "sha", "siblings": [...]}
  HEAD/GET /ORG/REPO/resolve/REV/PATH
       large files (LFS: .safetensors, .gguf, .bin): 302 to /cdn/SHA256 with X-Linked-Etag,
       X-Linked-Size, X-Repo-Commit; small files: 200 with ETag = git blob sha1.
  GET  /cdn/SHA256  the bytes, with Range support (206).
Test controls (JSON): POST /_control {"drop_after": {SHA256: N}, "corrupt_once": [SHA256],
"gated": ["ORG/REPO"], "token": "..."}; GET /_stats -> request counts; POST /_reset_stats.
Prints the port it listens on, then serves until killed.
"""
import hashlib
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".gguf", ".bin")
ROOT = sys.argv[1]
STATE = {"drop_after": {}, "corrupt_once": set(), "gated": set(), "token": "secret"}
STATS = {"api": 0, "head": 0, "resolve_get": 0, "cdn": 0, "cdn_range": 0}
LOCK = threading.Lock()


def repo_files(repo_dir):
    out = []
    for base, _dirs, files in os.walk(repo_dir):
        for f in files:
            full = os.path.join(base, f)
            out.append(os.path.relpath(full, repo_dir).replace(os.sep, "/"))
    return sorted(out)


def file_info(path):
    data = open(path, "rb").read()
    git_sha1 = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "git": git_sha1}


def repo_commit(repo_dir):
    h = hashlib.sha1()
    for rel in repo_files(repo_dir):
        h.update(rel.encode() + b"\0" + file_info(os.path.join(repo_dir, rel))["git"].encode())
    return h.hexdigest()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, code, obj, extra=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def authorized(self, repo):
        if repo not in STATE["gated"]:
            return True
        return self.headers.get("Authorization") == "Bearer " + STATE["token"]

    def find_repo(self, parts):
        if len(parts) < 2:
            return None, None
        repo = parts[0] + "/" + parts[1]
        repo_dir = os.path.join(ROOT, parts[0], parts[1])
        return (repo, repo_dir) if os.path.isdir(repo_dir) else (repo, None)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b"{}"
        path = urlparse(self.path).path
        if path == "/_control":
            ctl = json.loads(body or b"{}")
            with LOCK:
                STATE["drop_after"].update(ctl.get("drop_after", {}))
                STATE["corrupt_once"].update(ctl.get("corrupt_once", []))
                STATE["gated"].update(ctl.get("gated", []))
                if "token" in ctl:
                    STATE["token"] = ctl["token"]
            return self.send_json(200, {"ok": True})
        if path == "/_reset_stats":
            with LOCK:
                for k in STATS:
                    STATS[k] = 0
            return self.send_json(200, {"ok": True})
        self.send_json(404, {"error": "not found"})

    def do_HEAD(self):
        self.handle_get(head=True)

    def do_GET(self):
        self.handle_get(head=False)

    def handle_get(self, head):
        url = urlparse(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        if parts == ["_stats"]:
            with LOCK:
                return self.send_json(200, dict(STATS))
        if parts[:2] == ["api", "models"]:
            with LOCK:
                STATS["api"] += 1
            repo, repo_dir = self.find_repo(parts[2:])
            if repo_dir is None:
                return self.send_json(404, {"error": "Repository not found"})
            if not self.authorized(repo):
                return self.send_json(401, {"error": "Access to model is restricted"})
            rev = parts[5] if len(parts) > 5 else "main"
            commit = repo_commit(repo_dir)
            if rev not in ("main", commit):
                return self.send_json(404, {"error": "Revision not found"})
            siblings = []
            for rel in repo_files(repo_dir):
                info = file_info(os.path.join(repo_dir, rel))
                entry = {"rfilename": rel, "size": info["size"], "blobId": info["git"]}
                if rel.endswith(LFS_SUFFIXES):
                    entry["lfs"] = {"sha256": info["sha256"], "size": info["size"], "pointerSize": 134}
                siblings.append(entry)
            return self.send_json(200, {"id": repo, "sha": commit, "siblings": siblings})
        if parts and parts[0] == "cdn":
            return self.serve_cdn(parts[1] if len(parts) > 1 else "", head)
        if len(parts) >= 5 and parts[2] == "resolve":
            with LOCK:
                STATS["head" if head else "resolve_get"] += 1
            repo, repo_dir = self.find_repo(parts)
            if repo_dir is None:
                return self.send_json(404, {"error": "Repository not found"})
            if not self.authorized(repo):
                return self.send_json(401, {"error": "Access to model is restricted"})
            commit = repo_commit(repo_dir)
            if parts[3] not in ("main", commit):
                return self.send_json(404, {"error": "Revision not found"})
            rel = "/".join(parts[4:])
            full = os.path.join(repo_dir, rel)
            if not os.path.isfile(full):
                return self.send_json(404, {"error": "Entry not found"})
            info = file_info(full)
            if rel.endswith(LFS_SUFFIXES):
                host = self.headers.get("Host")
                self.send_response(302)
                self.send_header("Location", "http://%s/cdn/%s" % (host, info["sha256"]))
                self.send_header("X-Repo-Commit", commit)
                self.send_header("X-Linked-Etag", '"%s"' % info["sha256"])
                self.send_header("X-Linked-Size", str(info["size"]))
                self.send_header("ETag", '"%s"' % info["git"])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = open(full, "rb").read()
            self.send_response(200)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", '"%s"' % info["git"])
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)
            return
        self.send_json(404, {"error": "not found"})

    def serve_cdn(self, sha, head):
        found = None
        for base, _dirs, files in os.walk(ROOT):
            for f in files:
                full = os.path.join(base, f)
                if f.endswith(LFS_SUFFIXES) and file_info(full)["sha256"] == sha:
                    found = full
        if found is None:
            return self.send_json(404, {"error": "blob not found"})
        data = open(found, "rb").read()
        start = 0
        rng = self.headers.get("Range")
        with LOCK:
            STATS["cdn"] += 1
            if rng:
                STATS["cdn_range"] += 1
            drop = STATE["drop_after"].pop(sha, None)
            corrupt = sha in STATE["corrupt_once"]
            STATE["corrupt_once"].discard(sha)
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        else:
            self.send_response(200)
        body = bytearray(data[start:])
        if corrupt and body:
            body[len(body) // 2] ^= 0xFF
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if head:
            return
        if drop is not None:
            # Send part of the body, then cut the connection as a flaky network would.
            self.wfile.write(bytes(body[:drop]))
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(bytes(body))


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
