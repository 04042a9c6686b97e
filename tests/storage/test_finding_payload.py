"""storage.findings.finding_payload: the shape alerts and the API show, the same whether the row comes from SQLite
(a naive UTC time) or from a writer or PostgreSQL (an aware one)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from kamiyo.findings import Finding, FindingType, Severity
from kamiyo.storage.findings import finding_payload


def row(created: datetime) -> dict:
    finding = Finding("fork-detected", Severity.HIGH, FindingType.SUSPICIOUS, 1, "0x" + "ab" * 20, 7, None,
                      "0x" + "cd" * 32, {"labels": [{"entity": "0x" + "ab" * 20, "label": "fork"}]}, created)
    return finding.row()


def test_a_naive_time_is_utc_and_shows_as_an_aware_one_does():
    aware = datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=timezone.utc)
    naive = finding_payload(row(aware.replace(tzinfo=None)))
    assert naive == finding_payload(row(aware))
    assert naive["created_at"] == "2024-05-01T12:00:00.250000Z"
    assert finding_payload(row(aware.replace(microsecond=0, tzinfo=None)))["created_at"] == "2024-05-01T12:00:00Z"
    other = aware.astimezone(timezone(timedelta(hours=2)))
    assert finding_payload(row(other))["created_at"] == "2024-05-01T14:00:00.250000+02:00"  # as it always was


def test_labels_are_lifted_out_of_the_evidence_and_are_an_empty_list_without_any():
    payload = finding_payload(row(datetime(2024, 5, 1, tzinfo=timezone.utc)))
    assert payload["labels"] == payload["evidence"]["labels"] == [{"entity": "0x" + "ab" * 20, "label": "fork"}]
    bare = row(datetime(2024, 5, 1, tzinfo=timezone.utc)) | {"evidence": {}}
    assert finding_payload(bare)["labels"] == [] and finding_payload(bare)["evidence"] == {}
