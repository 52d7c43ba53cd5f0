"""The Java programs the project runs, without Maven: per program (a :class:`Bundle`: the local
Kafka broker in ``infra/kafka``, the tests' S3 server s3proxy in ``infra/s3proxy``) a lock file
of artifact coordinates and sha256 sums (``jars.lock``), and a fetch that downloads them from a
Maven repository and verifies every byte before the program may load it.

``make lock`` writes the locks where Maven exists (``python -m devstack.jars lock``): Maven
resolves each bundle's ``pom.xml``, and its lock records each resolved jar with its sha256 and
the pom's own sha256, so a pom edited without a new lock is caught by a test. ``make bootstrap``
fetches (``python -m devstack.jars fetch``) with the standard library only: a jar already in
the local Maven repository (``~/.m2``) is copied when its sum matches, any other is downloaded
from ``MAVEN_REPOSITORY_URL`` (Maven Central by default). A sum that does not match stops the
bootstrap and nothing of that file is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
# What the lib folder was last filled from: the lock's sha256. A changed lock refetches.
STAMP_NAME = ".lock.sha256"
CENTRAL = "https://repo.maven.apache.org/maven2"
_POM_HEADER = "# pom.xml sha256 "


class JarError(RuntimeError):
    """A jar could not be fetched, or what was fetched is not what the lock says."""


@dataclass(frozen=True)
class Bundle:
    """One Java program's jars: ``directory`` holds its ``pom.xml`` and ``jars.lock``, and the
    ``lib`` folder the fetch fills (ignored by git)."""

    name: str
    title: str  # the lock's first words: whose jars these are
    directory: Path

    @property
    def pom(self) -> Path:
        return self.directory / "pom.xml"

    @property
    def lock(self) -> Path:
        return self.directory / "jars.lock"

    @property
    def lib(self) -> Path:
        return self.directory / "lib"


KAFKA = Bundle("kafka", "The local Kafka broker's jars", REPO_ROOT / "infra" / "kafka")
S3PROXY = Bundle("s3proxy", "The tests' S3 server's jars", REPO_ROOT / "infra" / "s3proxy")
BUNDLES = (KAFKA, S3PROXY)
# The broker's, as before there was more than one bundle.
KAFKA_DIR, POM, LOCK, LIB = KAFKA.directory, KAFKA.pom, KAFKA.lock, KAFKA.lib


@dataclass(frozen=True)
class Artifact:
    """One locked jar: its Maven coordinates and the sha256 of its bytes."""

    group: str
    artifact: str
    version: str
    sha256: str
    classifier: str = ""

    @property
    def coordinates(self) -> str:
        tail = f":{self.classifier}" if self.classifier else ""
        return f"{self.group}:{self.artifact}:{self.version}{tail}"

    @property
    def filename(self) -> str:
        """The name Maven's copy-dependencies gives it, so either way fills the same folder."""
        tail = f"-{self.classifier}" if self.classifier else ""
        return f"{self.artifact}-{self.version}{tail}.jar"

    @property
    def path(self) -> str:
        """Its path inside a Maven repository (remote or ``~/.m2/repository``)."""
        return f"{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{self.filename}"


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_lock(text: str, source: str = "jars.lock") -> tuple[str, list[Artifact]]:
    """The pom sha256 the lock was made from, and its artifacts (``source`` names the lock in
    errors).

    A line is ``group:artifact:version[:classifier] sha256``; ``#`` starts a comment.
    """
    pom_sha = ""
    artifacts: list[Artifact] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith(_POM_HEADER):
            pom_sha = line.removeprefix(_POM_HEADER).strip()
        if not line or line.startswith("#"):
            continue
        try:
            coordinates, sha = line.split()
            group, artifact, version, *classifier = coordinates.split(":")
        except ValueError:
            raise JarError(
                f"{source} line {number}: expected 'group:artifact:version sha256'"
            ) from None
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha) or len(classifier) > 1:
            raise JarError(f"{source} line {number}: malformed entry {line!r}")
        artifacts.append(Artifact(group, artifact, version, sha, "".join(classifier)))
    return pom_sha, artifacts


def render_lock(pom_sha: str, artifacts: Iterable[Artifact], bundle: Bundle = KAFKA) -> str:
    """The lock file's text, sorted so that a regeneration diffs only what changed."""
    pom = bundle.pom.relative_to(REPO_ROOT).as_posix()
    lines = [
        f"# {bundle.title} ({pom} resolved by Maven): coordinates and",
        "# sha256 of each. scripts/bootstrap.sh fetches and verifies them without Maven",
        "# (python -m devstack.jars fetch). Regenerate with `make lock` where Maven exists.",
        f"{_POM_HEADER}{pom_sha}",
    ]
    lines += [f"{a.coordinates} {a.sha256}" for a in sorted(artifacts, key=lambda a: a.coordinates)]
    return "\n".join(lines) + "\n"


def resolve_with_maven(pom: Path = POM) -> list[Artifact]:
    """Ask Maven for the pom's runtime jars (downloading them into ``~/.m2``) and sum each."""
    if shutil.which("mvn") is None:
        raise JarError("making the jar lock needs Maven (mvn) on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "deps.txt"
        subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:list",
                "-DincludeScope=runtime",
                "-DoutputAbsoluteArtifactFilename=true",
                f"-DoutputFile={listing}",
            ],
            check=True,
        )
        rows = listing.read_text().splitlines()
    artifacts = []
    for row in rows:
        # group:artifact:type[:classifier]:version:scope:/absolute/path
        fields = row.strip().split(":", 6)
        if len(fields) < 6 or fields[2] != "jar":
            continue
        if len(fields) == 7:
            group, artifact, _, classifier, version, _, path = fields
        else:
            group, artifact, _, version, _, path = fields
            classifier = ""
        artifacts.append(Artifact(group, artifact, version, sha256_of(Path(path)), classifier))
    if not artifacts:
        raise JarError(f"Maven listed no jars for {pom}")
    return artifacts


def write_lock(bundle: Bundle = KAFKA) -> int:
    """Regenerate the bundle's lock from its pom; returns how many jars it holds."""
    artifacts = resolve_with_maven(bundle.pom)
    bundle.lock.write_text(render_lock(sha256_of(bundle.pom), artifacts, bundle))
    return len(artifacts)


def _download(url: str, into: Path) -> None:
    # The scheme is checked in fetch(): only http(s) repositories are accepted.
    request = urllib.request.Request(url, headers={"User-Agent": "pod-engine-bootstrap"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=120) as response, into.open("wb") as out:  # noqa: S310
        shutil.copyfileobj(response, out, 1 << 20)


def _fetch_one(artifact: Artifact, dest: Path, repository: str, local_repo: Path) -> str:
    """Place one verified jar at ``dest``; returns where it came from."""
    cached = local_repo / artifact.path
    if cached.is_file() and sha256_of(cached) == artifact.sha256:
        shutil.copyfile(cached, dest)
        return "local"
    url = f"{repository.rstrip('/')}/{artifact.path}"
    part = dest.with_name(dest.name + ".part")
    try:
        _download(url, part)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise JarError(f"{artifact.coordinates}: download from {url} failed: {exc}") from exc
    got = sha256_of(part)
    if got != artifact.sha256:
        part.unlink()
        raise JarError(
            f"{artifact.coordinates}: sha256 {got} from {url} is not the locked {artifact.sha256}"
        )
    part.replace(dest)
    return "download"


def fetch(
    lock: Path = LOCK,
    lib: Path = LIB,
    *,
    repository: str | None = None,
    local_repo: Path | None = None,
) -> dict[str, int]:
    """Make ``lib`` hold exactly the locked jars, each verified; returns counts by source.

    A jar already in ``lib`` with the right sum is kept; a file the lock does not name is
    removed, so an older Kafka's jars never share the classpath with the new ones.
    """
    raw = lock.read_bytes()
    _, artifacts = parse_lock(raw.decode(), _shown(lock))
    repository = repository or os.environ.get("MAVEN_REPOSITORY_URL") or CENTRAL
    if not repository.startswith(("https://", "http://")):
        raise JarError(f"MAVEN_REPOSITORY_URL must be an http(s) URL, not {repository!r}")
    local_repo = local_repo or Path.home() / ".m2" / "repository"
    lib.mkdir(parents=True, exist_ok=True)
    wanted = {a.filename: a for a in artifacts}
    for stray in lib.iterdir():
        if stray.name not in wanted and stray.name != STAMP_NAME:
            stray.unlink()
    counts = {"kept": 0, "local": 0, "download": 0}
    for name, artifact in wanted.items():
        dest = lib / name
        if dest.is_file() and sha256_of(dest) == artifact.sha256:
            counts["kept"] += 1
            continue
        counts[_fetch_one(artifact, dest, repository, local_repo)] += 1
    (lib / STAMP_NAME).write_text(hashlib.sha256(raw).hexdigest() + "\n")
    return counts


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (errors name the lock)."""
    return path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else str(path)


def is_current(lock: Path = LOCK, lib: Path = LIB) -> bool:
    """Whether ``lib`` was last filled from this lock (the bootstrap's cheap re-run check)."""
    try:
        stamp = (lib / STAMP_NAME).read_text().strip()
    except FileNotFoundError:
        return False
    return stamp == hashlib.sha256(lock.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.jars", description=__doc__)
    names = [b.name for b in BUNDLES]
    parser.add_argument(
        "--only", choices=names, help="one bundle (default: all of them: " + ", ".join(names) + ")"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("lock", help="resolve each bundle's pom.xml with Maven and write its lock")
    get = sub.add_parser("fetch", help="download and verify each bundle's locked jars into lib/")
    get.add_argument("--if-stale", action="store_true", help="skip a bundle whose lib matches")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        for bundle in BUNDLES:
            if args.only not in (None, bundle.name):
                continue
            if args.command == "lock":
                count = write_lock(bundle)
                logger.info("jars: locked %d jars in %s", count, bundle.lock.relative_to(REPO_ROOT))
            elif not (args.if_stale and is_current(bundle.lock, bundle.lib)):
                counts = fetch(bundle.lock, bundle.lib)
                logger.info(
                    "jars: %s verified (%d kept, %d from ~/.m2, %d downloaded)",
                    bundle.lib.relative_to(REPO_ROOT),
                    counts["kept"],
                    counts["local"],
                    counts["download"],
                )
    except (JarError, subprocess.CalledProcessError) as exc:
        logger.error("jars: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
