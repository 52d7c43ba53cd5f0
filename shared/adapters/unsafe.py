"""Screening's unsafe-image check: NudeNet's 320n nudity detector, run locally on onnxruntime.

The model ships inside the ``nudenet`` wheel (``nudenet/320n.onnx``, 12 MB, a YOLOv8n detector
trained by NudeNet on 320x320 inputs): nothing is downloaded at run time, and its digest is
checked at construction so a different file under the same name is refused. Only the model
file is used: decoding and scaling are Pillow's here (with a pixel cap against decompression
bombs, and print-size images scaled down before anything else), so NudeNet's OpenCV path is
never imported.

Licence: NudeNet's code and this model are AGPL-3.0 (the wheel's ``LICENSE``, and the model's
own metadata: "AGPL-3.0 License (https://ultralytics.com/license)"), although its PyPI
metadata still says MIT.

What it flags: the detector finds 18 kinds of body part, exposed or covered, plus faces. Only
exposed genitals, female breasts, buttocks and anus count as adult content; covered parts,
bare male chests, bellies, armpits and feet are what ordinary fashion and sports designs show.
It does not detect violence: no local violence classifier with its model in its package and a
compatible licence was found (a gap, recorded in the decision on this check).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import io
import logging
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, UnidentifiedImageError

from shared.domain.screening.checks import UnsafeFinding
from shared.platform.errors import ConfigError, PermanentError
from shared.platform.images import resized_png, thumbnail_size
from shared.platform.memory import large_decode

# numpy and onnxruntime are imported where a classifier is built or run, not with this module:
# ~0.3 s and ~25 MB that a process importing the screening code without the check (it is off,
# or another service) does not pay.
if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from shared.domain.screening.settings import ScreeningSettings

logger = logging.getLogger(__name__)

# The model the wheel of nudenet 3.4.2 ships (its RECORD's digest of nudenet/320n.onnx).
MODEL_PACKAGE = "nudenet"
MODEL_FILE = "320n.onnx"
MODEL_SHA256 = "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f"
# The model's input side (trained at 320x320; its metadata's imgsz).
INPUT_SIDE = 320

# The model's classes, in its output's order (the ONNX file's "names" metadata; checked at load).
CLASSES: tuple[str, ...] = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
# The classes that make an image adult content (marketplaces' "nudity" rules): exposed
# genitals, female breasts, buttocks, anus. Each is reported as "adult:<class in lower case>".
ADULT_CLASSES: frozenset[str] = frozenset(
    {
        "FEMALE_BREAST_EXPOSED",
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)
# The largest design the engine makes is 8192 px a side (shared/domain/printsize.py): a
# larger image is refused before it is decoded (an RGB decode of this cap is ~200 MB).
DEFAULT_MAX_PIXELS = 8192 * 8192


class UnreadableImage(PermanentError):
    """Bytes that are not an image Pillow can decode within the pixel cap: another try reads
    the same bytes."""


@dataclass(frozen=True)
class ModelInfo:
    """Where the model was loaded from and what loading it cost."""

    path: Path
    sha256: str
    load_ms: float


def packaged_model_path() -> Path:
    """The model file inside the installed ``nudenet`` package (ConfigError: not installed).

    Found without importing the package: its ``__init__`` imports NudeNet's detector, and
    with it OpenCV (29 MB of the generator's resident memory, for code never run here)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if not folders:
        raise ConfigError(
            f"unsafe-image check: the {MODEL_PACKAGE} package (which ships the model) is not "
            "installed: install the extra pod-engine[unsafe] (AGPL-3.0, see the README), or "
            'turn the check off (SCREENING_CHECKS_OFF=["unsafe_image"])'
        )
    # The package is installed as files (a wheel is unpacked), so the model is a real path.
    return Path(folders[0]) / MODEL_FILE


class NudeNetClassifier:
    """:class:`shared.domain.screening.checks.UnsafeClassifier` on NudeNet's 320n model.

    One onnxruntime session, built at construction and shared: ``InferenceSession.run`` may
    be called from several threads at once (onnxruntime guarantees it: "InferenceSession::Run()
    is guaranteed to be thread-safe", microsoft/onnxruntime#19301), so ``classify`` holds no
    lock. Each run uses ``threads`` intra-op threads (default 1: the machine runs the
    pipeline beside it, and the screener already runs images in parallel threads).
    """

    def __init__(
        self,
        *,
        threshold: float,
        model_path: Path | None = None,
        expected_sha256: str | None = MODEL_SHA256,
        threads: int = 1,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if not 0 < threshold <= 1:
            raise ConfigError(f"SCREENING_UNSAFE_THRESHOLD: {threshold} is not in (0, 1]")
        if threads < 1:
            raise ConfigError(f"unsafe-image check: threads must be >= 1, not {threads}")
        if max_pixels < INPUT_SIDE * INPUT_SIDE:
            raise ConfigError(f"unsafe-image check: max_pixels {max_pixels} is too small")
        self.threshold = threshold
        self.max_pixels = max_pixels
        started = time.perf_counter()
        path = model_path if model_path is not None else packaged_model_path()
        digest = _model_digest(path, expected_sha256)
        self._session, self._input_name = _open_session(path, threads)
        self.model = ModelInfo(path, digest, (time.perf_counter() - started) * 1000)
        logger.info(
            "unsafe classifier loaded model=%s sha256=%s load_ms=%.0f threads=%d threshold=%.2f",
            path.name,
            digest[:12],
            self.model.load_ms,
            threads,
            threshold,
        )

    @classmethod
    def from_settings(cls, settings: ScreeningSettings) -> NudeNetClassifier:
        """The classifier at the deployment's threshold, on the packaged model."""
        return cls(threshold=settings.screening_unsafe_threshold)

    def classify(self, image: bytes) -> list[UnsafeFinding]:
        """The adult-content findings at or above the threshold, strongest first: one per
        label, with the best score of its detections. UnreadableImage for bytes that are not a
        decodable image (or past the pixel cap)."""
        return self.findings(self.scores(image))

    def findings(self, scores: dict[str, float]) -> list[UnsafeFinding]:
        """What :meth:`classify` reports for these class scores."""
        found = [
            UnsafeFinding(label=f"adult:{name.lower()}", score=round(score, 4))
            for name, score in scores.items()
            if name in ADULT_CLASSES and score >= self.threshold
        ]
        return sorted(found, key=lambda f: (-f.score, f.label))

    def scores(self, image: bytes) -> dict[str, float]:
        """Every class's best score in the image (0 where the model saw none): what the
        threshold is applied to, for the corpus's figures and for tuning."""
        tensor = self._tensor(image)
        (output,) = self._session.run(None, {self._input_name: tensor})
        return _best_scores(output)

    def _tensor(self, image: bytes) -> npt.NDArray[np.float32]:
        import numpy as np

        rgb = decode_scaled(image, max_pixels=self.max_pixels, side=INPUT_SIDE)
        # Padded to a square at the right and bottom, in black, as NudeNet's own code does.
        canvas = Image.new("RGB", (INPUT_SIDE, INPUT_SIDE))
        canvas.paste(rgb, (0, 0))
        array = np.asarray(canvas, dtype=np.float32) / 255.0
        return np.ascontiguousarray(array.transpose(2, 0, 1)[np.newaxis])


def decode_scaled(image: bytes, *, max_pixels: int, side: int) -> Image.Image:
    """The image as RGB, scaled down to fit ``side`` x ``side`` (aspect kept), its
    transparency flattened on black. Refuses what is not an image, or over ``max_pixels``,
    before decoding its pixels."""
    if not image:
        raise UnreadableImage("unsafe-image check: empty image")
    try:
        # Pillow's own bomb guard warns at its limit; ours is tighter and raises: the warning
        # would otherwise escape into the logs (or fail the tests, which turn warnings into
        # errors) for images this check refuses anyway.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(image)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise UnreadableImage(
                        f"unsafe-image check: {width}x{height} is over the {max_pixels} pixel cap"
                    )
                size = thumbnail_size(width, height, (side, side))
                strips = (
                    resized_png(image, size, Image.Resampling.BILINEAR, convert=_flatten)
                    if size is not None
                    else None
                )
                if strips is not None:
                    # A print-size PNG, scaled a strip at a time: the same pixels as below.
                    return strips
                # JPEG decodes at a fraction of its size directly (a no-op for other formats).
                img.draft("RGB", (side, side))
                with large_decode(width * height):
                    img.load()
                    if img.mode == "RGB":
                        # Scaled in place: flattening copies, and a copy of a print-size
                        # decode is 64 MB more at 4096 px.
                        img.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
                    flat = _flatten(img)
                    # reducing_gap: a cheap integer reduction first, then the filter on the
                    # small image.
                    flat.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    except Image.DecompressionBombError:
        raise UnreadableImage(
            "unsafe-image check: over Pillow's decompression-bomb limit "
            f"({Image.MAX_IMAGE_PIXELS} pixels)"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        if isinstance(exc, UnreadableImage):
            raise
        raise UnreadableImage(
            f"unsafe-image check: not a readable image ({type(exc).__name__})"
        ) from None
    return flat


def _flatten(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img.copy()
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return img.convert("RGB")


def _best_scores(output: Any) -> dict[str, float]:
    """Each class's best score over the detector's candidate boxes, counting a box only for
    the class it scores highest (as NudeNet's own post-processing does). No non-maximum
    suppression: NudeNet's is class-agnostic, so a box of exposed skin overlapping a stronger
    box of another class (a face, a covered part) would vanish from its list; here it still
    counts. Boxes are not needed to flag an image, only each class's strongest evidence."""
    import numpy as np

    # (1, 4 + classes, candidates) -> (candidates, classes): box coordinates are not needed.
    classes = np.asarray(output, dtype=np.float32)[0, 4:, :].T
    best = classes.argmax(axis=1)
    top = classes.max(axis=1)
    out = dict.fromkeys(CLASSES, 0.0)
    for index, name in enumerate(CLASSES):
        mine = top[best == index]
        if mine.size:
            out[name] = float(mine.max())
    return out


def _model_digest(path: Path, expected: str | None) -> str:
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(
            f"unsafe-image check: model {path} cannot be read ({type(exc).__name__})"
        ) from None
    if expected is not None and digest != expected:
        raise ConfigError(
            f"unsafe-image check: model {path} has sha256 {digest[:12]}..., not the "
            f"{expected[:12]}... of the pinned nudenet release"
        )
    return digest


def _class_names(session: Any) -> tuple[str, ...] | None:
    """The classes the model's metadata names, in output order (None: unreadable)."""
    raw = session.get_modelmeta().custom_metadata_map.get("names", "")
    try:
        names = ast.literal_eval(raw)  # a Python dict literal {0: 'NAME', ...}: data only
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(names, dict) or sorted(names) != list(range(len(names))):
        return None
    return tuple(str(names[i]) for i in range(len(names)))


_session_lock = threading.Lock()


def _open_session(path: Path, threads: int) -> tuple[Any, str]:
    """An onnxruntime session on the CPU only, with few threads, and its input's name.
    ConfigError if the file is not this detector (not ONNX, or other inputs or classes)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning worker threads burn a core between runs; the screener calls now and then.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No arena: onnxruntime's keeps the largest run's buffers for the life of the process
    # (12 MB more at rest, bench/memory.py); a 320 px run allocates its few afresh.
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    try:
        # Session construction is not documented as thread-safe; it runs once per process.
        with _session_lock:
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
    except Exception as exc:  # onnxruntime raises its own (pybind) exception types
        raise ConfigError(
            f"unsafe-image check: model {path} cannot be loaded: {type(exc).__name__}: "
            f"{str(exc)[:200]}"
        ) from None
    inputs = session.get_inputs()
    outputs = session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1 or _class_names(session) != CLASSES:
        raise ConfigError(f"unsafe-image check: model {path} is not NudeNet's detector")
    return session, str(inputs[0].name)
