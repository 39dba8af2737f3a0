"""Which uncommitted entries of an exporter dir this package created: proven, never guessed.

Retention deletes an entry that is not a committed version only when it can prove that this
package created it, by one of these forms:

- a staging directory `temp-airflow-tf-export-<32 hex>` (a random id per directory);
- a GCS publish claim `temp-claim-<version>` whose content is `{"token": "<32 hex>"}`. The
  name carries no random id on purpose: claiming is one create-only write of exactly that
  name, which is what keeps two publishers off one version; the content is the proof;
- an integer directory without `export_metadata.json` that is the target of such a claim
  (a GCS publish cut short) or holds the delete marker `.airflow-tf-export-deleting` (a GCS
  delete cut short: the marker is written before anything of the version is deleted).

Earlier releases named staging directories `temp-<32 hex>` and local deletes
`temp-deleting-<32 hex>`; exactly these two forms are recognised as ours too, so their
leftovers are still cleaned up. Every other `temp-*` entry (a user's `temp-notes.txt` or
`temp-dataset/`) is kept and reported.
"""

from __future__ import annotations

import json
import re

from airflow_tf_export.core.versions import STAGING_PREFIX, parse_version

STAGING_NAME_PREFIX = f"{STAGING_PREFIX}airflow-tf-export-"
CLAIM_PREFIX = f"{STAGING_PREFIX}claim-"
DELETE_MARKER = ".airflow-tf-export-deleting"

_TOKEN = re.compile(r"[0-9a-f]{32}")
_OUR_STAGING = re.compile(
    rf"(?:{re.escape(STAGING_NAME_PREFIX)}|{re.escape(STAGING_PREFIX)}(?:deleting-)?)[0-9a-f]{{32}}"
)
STAGING_FORMS = (
    f"{STAGING_NAME_PREFIX}<32 hex>, {CLAIM_PREFIX}<version> holding a token, or from earlier "
    f"releases {STAGING_PREFIX}<32 hex> and {STAGING_PREFIX}deleting-<32 hex>"
)


def staging_name(token: str) -> str:
    """The name of a new staging directory: `temp-airflow-tf-export-<token>`, where `token`
    is a random id of 32 lowercase hex digits (e.g. `uuid.uuid4().hex`)."""
    _check_token(token)
    return f"{STAGING_NAME_PREFIX}{token}"


def is_our_staging_name(name: str) -> bool:
    """Whether a name is one of the staging directory forms this package creates (or an
    earlier release created); a trailing `/` (a GCS prefix) is ignored."""
    return _OUR_STAGING.fullmatch(name.rstrip("/")) is not None


def claim_name(version: int) -> str:
    """The claim object reserving `version` during a GCS publish: `temp-claim-<version>`."""
    if parse_version(str(version)) != version:
        raise ValueError(f"a claim needs a positive integer version, got {version!r}")
    return f"{CLAIM_PREFIX}{version}"


def claim_version(name: str) -> int | None:
    """The version a claim name reserves, or None when `name` is not a claim name."""
    return parse_version(name[len(CLAIM_PREFIX) :]) if name.startswith(CLAIM_PREFIX) else None


def claim_body(token: str) -> bytes:
    """The content of a claim this package writes: `{"token": "<32 hex>"}`."""
    _check_token(token)
    return json.dumps({"token": token}).encode()


def is_claim_body(data: bytes) -> bool:
    """Whether `data` is a claim this package wrote: a JSON object whose `token` is 32
    lowercase hex digits (the form every release wrote)."""
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    token = body.get("token") if isinstance(body, dict) else None
    return isinstance(token, str) and _TOKEN.fullmatch(token) is not None


def is_ours(name: str, *, claimed: bool = False, marked: bool = False) -> bool:
    """Whether an uncommitted entry was provably created by this package.

    `claimed`: (an integer dir) the claim of its publish exists and holds our token.
    `marked`: a claim-named object holds our claim body, or an integer dir holds our delete
    marker. Anything else (an integer dir of tf.estimator, a user's `temp-notes.txt`) is not.
    """
    if parse_version(name) is not None:
        return claimed or marked
    if claim_version(name) is not None:
        return marked
    return is_our_staging_name(name)


def _check_token(token: str) -> None:
    if not isinstance(token, str) or _TOKEN.fullmatch(token) is None:
        raise ValueError(f"a staging or claim token must be 32 lowercase hex digits, got {token!r}")
