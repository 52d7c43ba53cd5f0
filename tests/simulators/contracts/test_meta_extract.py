"""The Meta catalog contract extract (simulators/contracts/meta): the committed file is what
the script makes of Meta's SDK codegen specs at the recorded commit (when a copy of the
repository is at hand), and what it keeps."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from simulators.contracts.meta import EXTRACT, ITEM_FIELDS, contract
from simulators.contracts.meta.extract import Source, extract, render

SOURCE = Path(
    os.environ.get(
        "POD_META_CODEGEN_SOURCE", "/work/.mirror/facebook+facebook-business-sdk-codegen/repo"
    )
)


def test_the_extract_records_its_source_and_keeps_what_the_simulator_checks() -> None:
    c = contract()
    source = c.raw["_source"]
    assert source["repository"].endswith("facebook/facebook-business-sdk-codegen")
    assert len(source["commit"]) == 40 and source["graph_api_version"].startswith("v")
    assert {"item_type", "requests"} <= c.params("ProductCatalog", "POST", "items_batch")
    assert "in stock" in c.enum("ProductItem", "availability")
    assert set(c.item_fields()) == set(ITEM_FIELDS)


@pytest.mark.skipif(not SOURCE.exists(), reason=f"no copy of Meta's codegen repo at {SOURCE}")
def test_the_committed_extract_is_the_scripts_output_at_the_recorded_commit() -> None:
    recorded = json.loads(EXTRACT.read_text())["_source"]
    head = subprocess.run(
        ["git", "--git-dir", str(SOURCE), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if head != recorded["commit"]:
        pytest.skip(f"the copy is at {head}, the extract at {recorded['commit']}")
    assert render(extract(Source(SOURCE), recorded["extracted"])) == EXTRACT.read_text()
