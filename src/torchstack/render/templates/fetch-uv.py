"""Fetch the uv wheel pinned by sha256 from the package index and unpack its binary.

Rendered by torchstack. Runs in a throwaway build stage with the OS's python3 only (stdlib):
usage: fetch-uv.py VERSION SHA256 DEFAULT_INDEX_URL TARGET_DIR. The index URL (which may carry
credentials) and a CA bundle come from BuildKit secrets when torchstack passes them.
"""

import base64
import hashlib
import json
import os
import re
import ssl
import sys
import urllib.parse
import urllib.request
import zipfile

SECRETS = "/run/torchstack/secrets"
PLATFORM = re.compile(r"-py3-none-.*manylinux.*_x86_64.*\.whl$")


def secret(name, default):
    path = os.path.join(SECRETS, name)
    if os.path.isfile(path) and os.path.getsize(path):
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    return default


def opener():
    ca = os.path.join(SECRETS, "ca-bundle")
    context = ssl.create_default_context(cafile=ca if os.path.isfile(ca) and os.path.getsize(ca)
                                         else None)
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))


def request(url, **headers):
    """A request for `url`; user:password in it (a mirror's credentials) becomes Basic auth,
    which urllib does not do by itself."""
    parts = urllib.parse.urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    if userinfo:
        token = base64.b64encode(urllib.parse.unquote(userinfo).encode()).decode()
        headers["Authorization"] = f"Basic {token}"
        url = urllib.parse.urlunsplit(parts._replace(netloc=host))
    return urllib.request.Request(url, headers=headers)


def wheel_links(index, version):
    """(file name, absolute URL) of uv's files on the index: PEP 691 JSON, else PEP 503 HTML."""
    page = request(f"{index.rstrip('/')}/uv/",
                   Accept="application/vnd.pypi.simple.v1+json, text/html;q=0.1")
    with opener().open(page, timeout=60) as response:
        body, kind, base = response.read(), response.headers.get("Content-Type", ""), response.url
    if "json" in kind:
        for item in json.loads(body)["files"]:
            yield item["filename"], urllib.parse.urljoin(base, item["url"])
    else:
        for href in re.findall(rb'href="([^"]+)"', body):
            url = urllib.parse.urljoin(base, href.decode())
            yield urllib.parse.unquote(url.split("#")[0].rsplit("/", 1)[-1]), url


def _with_auth(url, index):
    """`url` with the index's user:password, when the index URL has them."""
    userinfo = urllib.parse.urlsplit(index).netloc.rpartition("@")[0]
    if not userinfo or "@" in urllib.parse.urlsplit(url).netloc:
        return url
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))


def main(version, sha256, default_index, target):
    index = secret("index-url", default_index)
    wanted = [(n, u) for n, u in wheel_links(index, version)
              if n.startswith(f"uv-{version}-") and PLATFORM.search(n)]
    for name, url in wanted:
        # Files on the index's own host get its credentials; elsewhere (a CDN) they are not sent.
        same_host = urllib.parse.urlsplit(url).hostname == urllib.parse.urlsplit(index).hostname
        with opener().open(request(_with_auth(url, index) if same_host else url),
                           timeout=300) as response:
            data = response.read()
        if hashlib.sha256(data).hexdigest() != sha256:
            continue
        os.makedirs(target, exist_ok=True)
        wheel = os.path.join(target, name)
        with open(wheel, "wb") as handle:
            handle.write(data)
        with zipfile.ZipFile(wheel) as archive:
            member = next(m for m in archive.namelist() if m.endswith(".data/scripts/uv"))
            with open(os.path.join(target, "uv"), "wb") as out:
                out.write(archive.read(member))
        os.remove(wheel)
        os.chmod(os.path.join(target, "uv"), 0o755)
        return 0
    names = ", ".join(n for n, _ in wanted) or "none"
    sys.stderr.write(f"torchstack: no uv {version} wheel with sha256 {sha256} on the index"
                     f" (x86_64 manylinux wheels found: {names})\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
