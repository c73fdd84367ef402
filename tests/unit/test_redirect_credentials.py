"""Issue 34 §1: a download sent the Hugging Face token along a redirect to another host (urllib
copies every header). The hub here answers 302 to a second origin, which records the headers
it got; a redirect within the same origin keeps them."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from airpods.models.download import download

BODY = b"GGUF" + bytes(60)


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_credentials_stay_with_their_origin_across_redirects(tmp_path):
    seen: list[tuple[str, str | None, str | None]] = []  # (where, Authorization, Cookie)

    class Storage(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802 - http.server's names
            seen.append(("storage", self.headers.get("Authorization"), self.headers.get("Cookie")))
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            self.do_HEAD()
            self.wfile.write(BODY)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Storage) as storage:

        class Hub(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802
                seen.append((f"hub {self.path}", self.headers.get("Authorization"), self.headers.get("Cookie")))
                self.send_response(302)
                # first within the hub (same origin), then to the storage (another origin)
                self.send_header("Location", "/resolve/again" if self.path == "/resolve" else storage + "/blob")
                self.end_headers()

            do_GET = do_HEAD  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        with serving(Hub) as hub:
            headers = {"Authorization": "Bearer hf_secret", "Cookie": "session=1"}
            digest = download(hub + "/resolve", tmp_path / "m.gguf.partial", lambda n: None, headers=headers)
    assert len(digest) == 64 and (tmp_path / "m.gguf.partial").read_bytes() == BODY
    assert ("hub /resolve/again", "Bearer hf_secret", "session=1") in seen  # the same origin keeps them
    assert [s for s in seen if s[0] == "storage"] and all(s[1:] == (None, None) for s in seen if s[0] == "storage")
