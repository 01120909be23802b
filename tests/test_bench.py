"""The benchmark harness's own moving parts (bench/run itself is exercised by running it)."""
import json

from django.contrib.auth.hashers import PBKDF2PasswordHasher, check_password, make_password

from bench import _harness
from bench._hashers import CountingPBKDF2PasswordHasher, hashes_counted


def test_counting_hasher_counts_every_hash_and_reads_default_hashes(settings, tmp_path, monkeypatch):
    log = tmp_path / "hashes"
    settings.BENCH_PASSWORD_HASH_LOG = str(log)
    monkeypatch.setattr(CountingPBKDF2PasswordHasher, "iterations", 1000)  # same work, less of it
    encoded = PBKDF2PasswordHasher().encode("correct horse", "s" * 22, iterations=1000)
    settings.PASSWORD_HASHERS = ["bench._hashers.CountingPBKDF2PasswordHasher"]
    assert hashes_counted(log) == 0
    assert check_password("correct horse", encoded)
    assert not check_password("wrong", encoded)
    assert make_password("correct horse", salt="s" * 22) == encoded
    assert hashes_counted(log) == 3


def test_table_lists_reported_rows_and_failed_workloads(tmp_path, monkeypatch):
    results = tmp_path / "results.jsonl"
    monkeypatch.setenv("BENCH_RESULTS", str(results))
    _harness.report("enrollments/s", "2.00/s", "≥ 1.00/s", "3.00/s", "met")
    table = _harness.table(str(results), ["sessions"]).splitlines()
    assert table[0].split("|")[1].strip() == "workload"
    assert [cell.strip() for cell in table[2].split("|")[1:-1]] == ["enrollments/s", "2.00/s", "≥ 1.00/s", "3.00/s", "met"]
    assert "FAILED" in table[3] and "sessions" in table[3]
    assert json.loads(results.read_text())["figure"] == "2.00/s"
