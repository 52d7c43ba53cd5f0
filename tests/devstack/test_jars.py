"""The broker's jars without Maven: the lock matches the pom, and a fetch keeps only bytes whose
sha256 the lock names (served here by a real HTTP server standing in for Maven Central)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from devstack import jars

pytestmark = pytest.mark.unit


def test_the_lock_was_made_from_the_current_pom() -> None:
    pom_sha, artifacts = jars.parse_lock(jars.LOCK.read_text())
    assert pom_sha == jars.sha256_of(jars.POM), (
        "infra/kafka/pom.xml changed since infra/kafka/jars.lock was made: run `make lock`"
    )
    names = {a.artifact for a in artifacts}
    assert {"kafka_2.13", "kafka-tools", "kafka-clients", "log4j-core"} <= names


def _jar(repo: Path, group: str, artifact: str, version: str, body: bytes) -> jars.Artifact:
    entry = jars.Artifact(group, artifact, version, hashlib.sha256(body).hexdigest())
    path = repo / entry.path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return entry


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[tuple[Path, str, list[str]]]:
    """A Maven-layout folder served over HTTP; yields (folder, url, paths requested)."""
    root = tmp_path / "remote"
    root.mkdir()
    requested: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            requested.append(self.path)

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/maven2", requested
    finally:
        server.shutdown()
        server.server_close()


def _write_lock(path: Path, artifacts: list[jars.Artifact]) -> Path:
    path.write_text(jars.render_lock("0" * 64, artifacts))
    return path


def test_fetch_downloads_verifies_and_skips_what_it_has(
    tmp_path: Path, remote: tuple[Path, str, list[str]]
) -> None:
    root, url, requested = remote
    a = _jar(root / "maven2", "org.example", "alpha", "1.0", b"alpha bytes")
    b = _jar(root / "maven2", "org.example.deep", "beta", "2.1", b"beta bytes")
    lock = _write_lock(tmp_path / "jars.lock", [a, b])
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "old-kafka-3.0.jar").write_bytes(b"an older broker's jar")

    counts = jars.fetch(lock, lib, repository=url, local_repo=tmp_path / "no-m2")

    assert counts == {"kept": 0, "local": 0, "download": 2}
    assert (lib / "alpha-1.0.jar").read_bytes() == b"alpha bytes"
    assert (lib / "beta-2.1.jar").read_bytes() == b"beta bytes"
    assert not (lib / "old-kafka-3.0.jar").exists(), "a jar the lock does not name stays"
    assert sorted(requested) == [
        "/maven2/org/example/alpha/1.0/alpha-1.0.jar",
        "/maven2/org/example/deep/beta/2.1/beta-2.1.jar",
    ]
    assert jars.is_current(lock, lib)

    requested.clear()
    again = jars.fetch(lock, lib, repository=url, local_repo=tmp_path / "no-m2")
    assert again == {"kept": 2, "local": 0, "download": 0}
    assert requested == []


def test_a_jar_whose_sum_differs_is_refused_and_not_kept(
    tmp_path: Path, remote: tuple[Path, str, list[str]]
) -> None:
    root, url, _ = remote
    good = _jar(root / "maven2", "org.example", "alpha", "1.0", b"alpha bytes")
    # The repository now serves other bytes than the ones locked.
    (root / "maven2" / good.path).write_bytes(b"alpha bytes, tampered")
    lock = _write_lock(tmp_path / "jars.lock", [good])
    lib = tmp_path / "lib"

    with pytest.raises(jars.JarError, match=r"org\.example:alpha:1\.0: sha256 .* not the locked"):
        jars.fetch(lock, lib, repository=url, local_repo=tmp_path / "no-m2")

    assert list(lib.iterdir()) == []
    assert not jars.is_current(lock, lib)


def test_a_missing_jar_names_its_coordinates_and_url(
    tmp_path: Path, remote: tuple[Path, str, list[str]]
) -> None:
    _, url, _ = remote
    ghost = jars.Artifact("org.example", "ghost", "9", "a" * 64)
    lock = _write_lock(tmp_path / "jars.lock", [ghost])
    with pytest.raises(jars.JarError, match=r"org\.example:ghost:9: download from .*ghost-9\.jar"):
        jars.fetch(lock, tmp_path / "lib", repository=url, local_repo=tmp_path / "no-m2")


def test_the_local_maven_repository_is_used_only_when_its_sum_matches(
    tmp_path: Path, remote: tuple[Path, str, list[str]]
) -> None:
    root, url, requested = remote
    a = _jar(root / "maven2", "org.example", "alpha", "1.0", b"alpha bytes")
    b = _jar(root / "maven2", "org.example", "beta", "1.0", b"beta bytes")
    m2 = tmp_path / "m2"
    _jar(m2, "org.example", "alpha", "1.0", b"alpha bytes")
    _jar(m2, "org.example", "beta", "1.0", b"a corrupt copy in ~/.m2")
    lock = _write_lock(tmp_path / "jars.lock", [a, b])

    counts = jars.fetch(lock, tmp_path / "lib", repository=url, local_repo=m2)

    assert counts == {"kept": 0, "local": 1, "download": 1}
    assert requested == ["/maven2/org/example/beta/1.0/beta-1.0.jar"]
    assert (tmp_path / "lib" / "beta-1.0.jar").read_bytes() == b"beta bytes"


@pytest.mark.parametrize(
    "line",
    [
        "org.example:alpha 0123",
        "org.example:alpha:1.0",
        f"org.example:alpha:1.0 {'g' * 64}",
        f"org.example:alpha:1.0:x:y {'a' * 64}",
    ],
)
def test_a_malformed_lock_line_is_refused_with_its_number(line: str) -> None:
    with pytest.raises(jars.JarError, match="line 2"):
        jars.parse_lock(f"# header\n{line}\n")


def test_a_lock_round_trips_with_classifiers() -> None:
    entries = [
        jars.Artifact("org.example", "alpha", "1.0", "a" * 64, "linux-x86_64"),
        jars.Artifact("org.example", "beta", "2.0", "b" * 64),
    ]
    pom_sha, parsed = jars.parse_lock(jars.render_lock("c" * 64, entries))
    assert (pom_sha, parsed) == ("c" * 64, entries)
    assert entries[0].filename == "alpha-1.0-linux-x86_64.jar"


def test_the_s3proxy_lock_was_made_from_its_pom() -> None:
    lock = jars.S3PROXY.lock.read_text()
    pom_sha, artifacts = jars.parse_lock(lock)
    assert pom_sha == jars.sha256_of(jars.S3PROXY.pom), (
        "infra/s3proxy/pom.xml changed since infra/s3proxy/jars.lock was made: run `make lock`"
    )
    assert lock.startswith("# The tests' S3 server's jars (infra/s3proxy/pom.xml resolved")
    versions = {a.artifact: a.version for a in artifacts}
    assert versions["s3proxy"] == "2.6.0"
    assert {"jclouds-blobstore", "logback-classic"} <= versions.keys()
    # Each bundle has a folder of its own: the broker's classpath never holds s3proxy's jars.
    assert len({b.lib for b in jars.BUNDLES}) == len(jars.BUNDLES)


def test_the_bootstrap_fetches_every_bundle(
    tmp_path: Path,
    remote: tuple[Path, str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, url, requested = remote
    bundles = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        entry = _jar(root / "maven2", "org.example", name, "1.0", f"{name} bytes".encode())
        bundle = jars.Bundle(name, f"The {name} jars", folder)
        _write_lock(bundle.lock, [entry])
        bundles.append(bundle)
    monkeypatch.setattr(jars, "BUNDLES", tuple(bundles))
    monkeypatch.setattr(jars, "REPO_ROOT", tmp_path)
    monkeypatch.setenv("MAVEN_REPOSITORY_URL", url)
    monkeypatch.setenv("HOME", str(tmp_path / "no-home"))  # no ~/.m2 to copy from

    assert jars.main(["--only", "second", "fetch"]) == 0
    assert not bundles[0].lib.exists()
    assert (bundles[1].lib / "second-1.0.jar").read_bytes() == b"second bytes"

    requested.clear()
    assert jars.main(["fetch", "--if-stale"]) == 0
    assert requested == ["/maven2/org/example/first/1.0/first-1.0.jar"]  # second is current
    assert all(jars.is_current(b.lock, b.lib) for b in bundles)
