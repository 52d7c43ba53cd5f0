"""Kubernetes objects checked against their schemas, offline.

The core kinds against the Kubernetes JSON schemas that the ``kubernetes-validate`` package
bundles (generated from Kubernetes' OpenAPI documents), in their strict form (no field the API
does not know), for the oldest and the newest Kubernetes version the manifests target; KEDA's
kinds against the models ``cloudcoil-models-keda`` generates from KEDA's own CRDs (2.16.1), with
every field of the object required to be one of the CRD's (the models ignore others silently,
as a cluster's pruning would: a misspelt field would never take effect).
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate

# kubectl here is 1.32; the newest schemas the package has.
KUBERNETES_VERSIONS = ("1.32.0", kubernetes_validate.latest_version())


def _unknown(given: object, understood: object, path: str = "") -> list[str]:
    """Paths of ``given`` that the model's dump of it lacks."""
    if isinstance(given, dict) and isinstance(understood, dict):
        out = []
        for key, value in given.items():
            if key not in understood:
                out.append(f"{path}.{key}")
            else:
                out += _unknown(value, understood[key], f"{path}.{key}")
        return out
    if isinstance(given, list) and isinstance(understood, list):
        return [
            p
            for i, (g, u) in enumerate(zip(given, understood, strict=False))
            for p in _unknown(g, u, f"{path}[{i}]")
        ]
    return []


def _keda(doc: dict[str, Any]) -> None:
    from cloudcoil.models.keda import v1alpha1
    from pydantic import ValidationError

    model = {
        "ScaledObject": v1alpha1.ScaledObject,
        "TriggerAuthentication": (v1alpha1.TriggerAuthentication),
    }[doc["kind"]]
    try:
        parsed = model.model_validate(doc)
    except ValidationError as exc:
        raise AssertionError(f"{doc['kind']} {doc['metadata']['name']}: {exc}") from None
    dumped = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    unknown = _unknown(doc, dumped)
    assert not unknown, f"{doc['kind']} {doc['metadata']['name']}: unknown fields {unknown}"


def validate(doc: dict[str, Any]) -> None:
    """Raise AssertionError naming what is wrong with ``doc``."""
    if doc["apiVersion"].startswith("keda.sh/"):
        _keda(doc)
        return
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.absolute_path)
            raise AssertionError(
                f"{doc['kind']} {doc['metadata']['name']} (Kubernetes {version}): "
                f"{where}: {exc.message}"
            ) from None
