"""A job's images for the dashboard: previews rendered once, cached on disk and revalidated by
ETag; a print file of 64 MiB is never held whole, for a preview or for the image itself."""

from __future__ import annotations

import io
import os
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from PIL import Image

from shared.adapters.storage import LocalImageStorage, StoredImage
from tests.services.api.conftest import serve

MiB = 1 << 20


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("images")


@pytest.fixture(scope="module")
def api_images(pipeline_topics: str, migrated_db: str, stored: Path) -> Iterator[httpx.Client]:
    with serve(
        kafka_bootstrap_servers=pipeline_topics, database_url=migrated_db, image_storage_dir=stored
    ) as client:
        yield client


def _art(width: int, height: int, *, noise: bool = False) -> bytes:
    """A PNG: a gradient, or incompressible noise stored uncompressed (a big print file)."""
    if noise:
        image = Image.frombytes("RGBA", (width, height), os.urandom(width * height * 4))
    else:
        image = Image.linear_gradient("L").resize((width, height)).convert("RGBA")
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=0 if noise else 6)
    return out.getvalue()


def _job_with(migrated_db: str, image: StoredImage, width: int, height: int) -> str:
    job_id = f"thumbs-{uuid.uuid4()}"
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO jobs (job_id, theme, style, niche, product_types, image_count,"
            " expected_products, expected_publications, created_at)"
            " VALUES (%s, 't', 's', 'n', ARRAY['tshirt'], 1, 1, 0, now())",
            (job_id,),
        )
        conn.execute(
            "INSERT INTO images (job_id, image_index, sha256, uri, width, height, prompt, title,"
            " description, tags, created_at)"
            " VALUES (%s, 0, %s, %s, %s, %s, 'p', 't', 'd', '{}', now())",
            (job_id, image.sha256, image.uri, width, height),
        )
    return job_id


def test_a_preview_is_rendered_once_then_served_from_its_cache(
    api_images: httpx.Client, migrated_db: str, stored: Path
) -> None:
    image = LocalImageStorage(stored).save(_art(1500, 1000))
    path = f"/jobs/{_job_with(migrated_db, image, 1500, 1000)}/images/0"

    first = api_images.get(path, params={"size": 320})
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "image/webp"
    assert first.headers["cache-control"].startswith("private")
    etag = first.headers["etag"]
    with Image.open(io.BytesIO(first.content)) as preview:
        assert preview.format == "WEBP" and preview.width == 320
        assert abs(preview.height - 213) <= 1  # the aspect kept
    assert len(first.content) < 50_000

    # The print file gone: the preview still comes, unchanged (it was not read again).
    assert image.path is not None
    image.path.unlink()
    second = api_images.get(path, params={"size": 320})
    assert second.status_code == 200 and second.content == first.content
    assert second.headers["etag"] == etag
    # Every size was rendered from the one decode.
    small = api_images.get(path, params={"size": 160})
    assert small.status_code == 200
    with Image.open(io.BytesIO(small.content)) as preview:
        assert preview.width == 160 and abs(preview.height - 107) <= 1
    # A client holding the preview revalidates for nothing.
    fresh = api_images.get(path, params={"size": 320}, headers={"If-None-Match": etag})
    assert fresh.status_code == 304 and fresh.content == b""
    assert fresh.headers["etag"] == etag
    # The print file itself is gone: not found.
    assert api_images.get(path).status_code == 404


def test_a_size_not_offered_is_422(api_images: httpx.Client) -> None:
    resp = api_images.get("/jobs/any/images/0", params={"size": 321})
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["field"] == "size"


def test_a_64_mib_print_file_is_never_held_whole(
    api_images: httpx.Client, migrated_db: str, stored: Path
) -> None:
    side = 4000  # 4000 x 4000 RGBA, stored: 64 MB, under IMAGE_MAX_BYTES (64 MiB)
    image = LocalImageStorage(stored).save(_art(side, side, noise=True))
    assert image.path is not None and image.path.stat().st_size > 60 * MiB
    path = f"/jobs/{_job_with(migrated_db, image, side, side)}/images/0"

    # The API runs in this process: every Python object it makes is traced.
    tracemalloc.start()
    try:
        preview = api_images.get(path, params={"size": 640})
        assert preview.status_code == 200, preview.text
        _, preview_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        streamed = 0
        with api_images.stream("GET", path) as whole:
            assert whole.status_code == 200
            for block in whole.iter_bytes():
                streamed += len(block)
        _, whole_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert streamed == image.path.stat().st_size
    # The old route read the file into one bytes object (64 MB) per request.
    assert preview_peak < 8 * MiB, preview_peak
    assert whole_peak < 8 * MiB, whole_peak


def test_an_image_too_large_to_preview_is_refused_with_the_reason(
    pipeline_topics: str, migrated_db: str, tmp_path: Path
) -> None:
    image = LocalImageStorage(tmp_path).save(_art(1200, 1000))
    job_id = _job_with(migrated_db, image, 1200, 1000)
    with serve(
        kafka_bootstrap_servers=pipeline_topics,
        database_url=migrated_db,
        image_storage_dir=tmp_path,
        thumbnail_max_pixels=1_000_000,
    ) as api:
        resp = api.get(f"/jobs/{job_id}/images/0", params={"size": 160})
        assert resp.status_code == 422, resp.text
        assert "1200x1000" in resp.json()["detail"][0]["message"]
        # The image itself is still served as stored.
        assert api.get(f"/jobs/{job_id}/images/0").status_code == 200


def test_a_file_that_is_not_an_image_has_no_preview(
    api_images: httpx.Client, migrated_db: str, stored: Path
) -> None:
    image = LocalImageStorage(stored).save(b"\x89PNG\r\n\x1a\n" + b"not really" * 10)
    path = f"/jobs/{_job_with(migrated_db, image, 8, 8)}/images/0"
    resp = api_images.get(path, params={"size": 160})
    assert resp.status_code == 404 and resp.json()["error"] == "not_found"
