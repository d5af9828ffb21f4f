"""The PR comment: `python -m evalrun.github comment` against a local server that speaks the
GitHub REST API for issue comments (paginated list with Link headers, create, update,
bearer auth), run as the workflow runs it: a subprocess with the Actions environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from evalrun.github import COMMENT_LIMIT, comment_body, comment_marker
from tests.conftest import REPO

TOKEN = "ghs_test_token"


class FakeGitHub:
    """Issue comments of one repository, as api.github.com serves them."""

    def __init__(self, repo: str = "acme/widgets") -> None:
        self.repo = repo
        self.comments: dict[int, list[dict]] = {}
        self.next_id = 1000
        self.requests: list[tuple[str, str]] = []
        self.read_only = False
        self.fail_with: int | None = None
        self.user_login: str | None = None  # set: the token is a personal one for this login
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output clean
                pass

            def _send(self, code: int, payload, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                server.requests.append((method, self.path))
                if server.fail_with:
                    return self._send(server.fail_with, {"message": "Server Error"})
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"message": "Bad credentials"})
                if self.headers.get("Accept") != "application/vnd.github+json":
                    return self._send(415, {"message": "Unsupported media type"})
                url = urlparse(self.path)
                parts = url.path.strip("/").split("/")
                if parts == ["user"]:
                    # an installation token (GITHUB_TOKEN) may not read /user; a personal token may
                    if server.user_login:
                        return self._send(200, {"login": server.user_login, "type": "User"})
                    return self._send(403, {"message": "Resource not accessible by integration"})
                body = None
                if method in ("POST", "PATCH"):
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                    if not isinstance(body.get("body"), str):
                        return self._send(422, {"message": "Validation Failed"})
                    if len(body["body"]) > 65536:
                        return self._send(422, {"message": "body is too long (maximum is 65536 characters)"})
                    if server.read_only:
                        return self._send(403, {"message": "Resource not accessible by integration"})
                if parts[:3] != ["repos", *server.repo.split("/")][:3] or parts[3] != "issues":
                    return self._send(404, {"message": "Not Found"})
                if len(parts) == 6 and parts[5] == "comments":
                    number = int(parts[4])
                    thread = server.comments.setdefault(number, [])
                    if method == "GET":
                        q = parse_qs(url.query)
                        per_page = int(q.get("per_page", ["30"])[0])
                        page = int(q.get("page", ["1"])[0])
                        chunk = thread[(page - 1) * per_page: page * per_page]
                        headers = {}
                        if page * per_page < len(thread):
                            nxt = f"http://{self.headers['Host']}{url.path}?per_page={per_page}&page={page + 1}"
                            headers["Link"] = f'<{nxt}>; rel="next"'
                        return self._send(200, chunk, headers)
                    if method == "POST":
                        server.next_id += 1
                        login = server.user_login or "github-actions[bot]"
                        c = {"id": server.next_id, "body": body["body"],
                             "user": {"login": login, "type": "User" if server.user_login else "Bot"}}
                        thread.append(c)
                        return self._send(201, c)
                if len(parts) == 6 and parts[4] == "comments" and method == "PATCH":
                    for thread in server.comments.values():
                        for c in thread:
                            if c["id"] == int(parts[5]):
                                c["body"] = body["body"]
                                return self._send(200, c)
                return self._send(404, {"message": "Not Found"})

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

            def do_PATCH(self):
                self._route("PATCH")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def github():
    gh = FakeGitHub()
    yield gh
    gh.close()


def comment(tmp_path: Path, gh: FakeGitHub, report: str, *args: str, number: int = 7,
            token: str = TOKEN, repo: str | None = None) -> subprocess.CompletedProcess[str]:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "synchronize", "number": number,
                                 "pull_request": {"number": number}}))
    (tmp_path / "report.md").write_text(report)
    env = {**os.environ, "GITHUB_ACTIONS": "true", "GITHUB_TOKEN": token, "GITHUB_REPOSITORY": repo or gh.repo,
           "GITHUB_API_URL": gh.url, "GITHUB_EVENT_PATH": str(event)}
    return subprocess.run([sys.executable, "-m", "evalrun.github", "comment", "--report",
                           str(tmp_path / "report.md"), *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_posts_once_then_updates_the_same_comment(tmp_path, github):
    # other people's comments fill more than one page, so finding ours needs pagination
    github.comments[7] = [{"id": i, "body": f"looks good {i}", "user": {"login": "dev", "type": "User"}}
                          for i in range(1, 151)]
    r = comment(tmp_path, github, "## evalrun\n\nfirst\n")
    assert r.returncode == 0, r.stderr
    assert "created the PR comment" in r.stderr
    ours = [c for c in github.comments[7] if comment_marker("evalrun") in c["body"]]
    assert len(ours) == 1 and ours[0]["body"].endswith("first\n")

    r = comment(tmp_path, github, "## evalrun\n\nsecond\n")
    assert r.returncode == 0, r.stderr
    assert "updated the PR comment" in r.stderr
    ours = [c for c in github.comments[7] if comment_marker("evalrun") in c["body"]]
    assert len(ours) == 1 and ours[0]["body"].endswith("second\n")
    assert len(github.comments[7]) == 151  # never a second comment
    assert ("GET", "/repos/acme/widgets/issues/7/comments?per_page=100&page=2") in github.requests

    # another report key is another comment; the first stays as it is
    r = comment(tmp_path, github, "sharded\n", "--key", "evalrun-sharded")
    assert r.returncode == 0 and len(github.comments[7]) == 152
    assert ours[0]["body"].endswith("second\n")


def test_long_reports_are_cut_to_what_github_accepts(tmp_path, github):
    r = comment(tmp_path, github, "x" * 70_000)
    assert r.returncode == 0, r.stderr
    body = github.comments[7][0]["body"]
    assert len(body) <= COMMENT_LIMIT and body.startswith(comment_marker("evalrun")) and "truncated" in body
    assert comment_body("short", "k") == comment_marker("k") + "\nshort"


def test_read_only_token_warns_without_failing_the_gate(tmp_path, github):
    github.read_only = True
    r = comment(tmp_path, github, "report")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("::warning title=evalrun::could not post the PR comment: HTTP 403")


def test_bad_credentials_and_missing_settings(tmp_path, github):
    r = comment(tmp_path, github, "report", token="wrong")
    assert r.returncode == 0 and "HTTP 401" in r.stdout  # reported as a warning, never a traceback
    r = comment(tmp_path, github, "report", token="")
    assert r.returncode == 2 and r.stderr.strip() == \
        "evalrun: error: GITHUB_TOKEN and GITHUB_REPOSITORY must be set to post a PR comment"
    r = subprocess.run([sys.executable, "-m", "evalrun.github", "comment", "--report", str(tmp_path / "none.md")],
                       env={**os.environ, "GITHUB_TOKEN": TOKEN}, cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "none.md" in r.stderr


def test_server_errors_are_exit_3(tmp_path, github):
    r = comment(tmp_path, github, "report", repo="acme/elsewhere")  # GitHub answers 404 without access
    assert r.returncode == 0 and "HTTP 404" in r.stdout
    github.fail_with = 502
    r = comment(tmp_path, github, "report")
    assert r.returncode == 3 and r.stderr.strip() == "evalrun: error: could not post the PR comment: HTTP 502 Bad Gateway"
    github.close()
    r = comment(tmp_path, github, "report")  # nothing listens any more
    assert r.returncode == 3 and r.stderr.startswith("evalrun: error: could not post the PR comment: ConnectError")
    assert "Traceback" not in r.stderr


def test_not_a_pull_request_posts_nothing(tmp_path, github):
    (tmp_path / "report.md").write_text("x")
    env = {**os.environ, "GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": github.repo, "GITHUB_API_URL": github.url,
           "GITHUB_EVENT_PATH": str(tmp_path / "push.json")}
    (tmp_path / "push.json").write_text(json.dumps({"ref": "refs/heads/main"}))
    r = subprocess.run([sys.executable, "-m", "evalrun.github", "comment", "--report", str(tmp_path / "report.md")],
                       env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "not a pull request" in r.stderr and github.requests == []


def test_only_our_own_comment_is_ever_edited(tmp_path, github):
    # someone pasted our marker into their own comment (or quoted ours): never edit it
    marker = comment_marker("evalrun")
    github.comments[7] = [{"id": 1, "body": f"{marker}\nmy notes", "user": {"login": "mallory", "type": "User"}},
                          {"id": 2, "body": f"> {marker}\nquoted", "user": {"login": "github-actions[bot]",
                                                                             "type": "Bot"}}]
    r = comment(tmp_path, github, "## evalrun\n\nreport\n")
    assert r.returncode == 0 and "created the PR comment" in r.stderr, r.stderr
    assert github.comments[7][0]["body"] == f"{marker}\nmy notes"
    assert github.comments[7][1]["body"] == f"> {marker}\nquoted"
    assert len(github.comments[7]) == 3 and github.comments[7][2]["user"]["login"] == "github-actions[bot]"
    r = comment(tmp_path, github, "## evalrun\n\nagain\n")
    assert "updated the PR comment" in r.stderr and len(github.comments[7]) == 3
    assert github.comments[7][2]["body"].endswith("again\n")


def test_a_personal_token_edits_only_comments_of_its_own_login(tmp_path, github):
    github.user_login = "ci-bot-account"
    marker = comment_marker("evalrun")
    github.comments[7] = [{"id": 5, "body": f"{marker}\nold", "user": {"login": "github-actions[bot]", "type": "Bot"}}]
    r = comment(tmp_path, github, "## evalrun\n\nnew\n")
    assert r.returncode == 0 and "created the PR comment" in r.stderr, r.stderr
    assert github.comments[7][0]["body"] == f"{marker}\nold"
    assert github.comments[7][1]["user"]["login"] == "ci-bot-account"
