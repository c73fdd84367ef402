"""A local stand-in for the Hugging Face hub (enough of its API for huggingface_hub via
HF_ENDPOINT: the repo tree listing and /resolve/ with ETag, X-Repo-Commit and Range) and a plain
file server for URL downloads. Counts the bytes it serves and can hold a body part-way (until
released), so a test sees a transfer in flight however slow the machine is."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Hub:
    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)  # repo -> path -> content
    files: dict[str, bytes] = field(default_factory=dict)  # /files/NAME for URL pulls
    wrong_sha: set[str] = field(default_factory=set)  # paths listed with a bad sha256
    served: int = 0
    requests: list[dict[str, int]] = field(default_factory=list)  # GETs: {"start", "sent"}
    hold_after: int | None = None  # each body pauses once it has sent this many bytes…
    released: threading.Event = field(default_factory=threading.Event)  # …until this is set
    url: str = ""
    cut_after: dict[str, int] = field(default_factory=dict)  # path -> close the body after N bytes, once
    etags: dict[str, str] = field(default_factory=dict)  # path -> the ETag to send (a changed file)
    status: dict[str, int] = field(default_factory=dict)  # path -> answer this HTTP status instead

    def add_repo_file(self, repo: str, path: str, content: bytes) -> None:
        self.repos.setdefault(repo, {})[path] = content


def _handler(hub: Hub):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send_json(self, data) -> None:
            body = json.dumps(data).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _send_bytes(self, content: bytes, head: bool, extra: dict[str, str], key: str = "") -> None:
            if key in hub.status:
                self.send_response(hub.status[key])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            asked = self.headers.get("Range", "")
            if key in hub.etags:
                extra = {**extra, "ETag": hub.etags[key]}
            if_range = self.headers.get("If-Range")
            if if_range and if_range != extra.get("ETag"):
                asked = ""  # the file changed since: the whole of it, 200 (RFC 9110 If-Range)
            start, end = 0, len(content) - 1
            match = re.match(r"bytes=(\d+)-(\d*)", asked)
            if match:
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else end
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(content)}")
            else:
                self.send_response(200)
            for header, value in extra.items():
                self.send_header(header, value)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            if head:
                return
            record = {"start": start, "sent": 0}
            hub.requests.append(record)
            cut = hub.cut_after.pop(key, None)
            for offset in range(start, end + 1, 65536):
                if hub.hold_after is not None and record["sent"] >= hub.hold_after:
                    hub.released.wait(timeout=300)
                chunk = content[offset : min(end + 1, offset + 65536)]
                if cut is not None and record["sent"] + len(chunk) > cut:
                    chunk = chunk[: max(0, cut - record["sent"])]
                    self.wfile.write(chunk)
                    hub.served += len(chunk)
                    record["sent"] += len(chunk)
                    self.close_connection = True
                    return
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                hub.served += len(chunk)
                record["sent"] += len(chunk)

        def _route(self, head: bool) -> None:
            path = self.path.split("?", 1)[0]
            tree = re.match(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)(/.*)?$", path)
            resolve = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
            if tree and tree.group(1) in hub.repos:
                entries = []
                for name, content in sorted(hub.repos[tree.group(1)].items()):
                    sha = hashlib.sha256(content).hexdigest() if name not in hub.wrong_sha else "0" * 64
                    entries.append(
                        {
                            "type": "file",
                            "path": name,
                            "size": len(content),
                            "oid": "f" * 40,
                            "lfs": {"oid": sha, "size": len(content), "pointerSize": 134},
                        }
                    )
                return self._send_json(entries)
            if resolve and resolve.group(1) in hub.repos and resolve.group(3) in hub.repos[resolve.group(1)]:
                content = hub.repos[resolve.group(1)][resolve.group(3)]
                sha = hashlib.sha256(content).hexdigest()
                return self._send_bytes(
                    content,
                    head,
                    {
                        "X-Repo-Commit": COMMIT,
                        "ETag": f'"{sha}"',
                        "X-Linked-Etag": f'"{sha}"',
                        "X-Linked-Size": str(len(content)),
                    },
                    resolve.group(3),
                )
            if path.startswith("/files/") and path[7:] in hub.files:
                name = path[7:]
                return self._send_bytes(hub.files[name], head, {"ETag": f'"{len(hub.files[name])}"'}, name)
            if path.startswith("/files/") and path[7:] in hub.status:
                return self._send_bytes(b"", head, {}, path[7:])
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            self._route(head=False)

        def do_HEAD(self):
            self._route(head=True)

    return Handler


def serve(hub: Hub) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def tiny_bytes(tmp: Path, seed: int) -> bytes:
    from tests.rig.tiny_gguf import write_tiny_model

    return write_tiny_model(tmp / f"m{seed}.gguf", seed=seed).read_bytes()
