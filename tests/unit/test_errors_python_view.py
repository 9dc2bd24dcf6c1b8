"""Python's view of the error catalogue stays in step with the core's."""

from __future__ import annotations

from hermes import _core
from hermes.domain.errors import Code, HermesError, catalogue


def test_every_code_python_raises_is_in_the_core_catalogue() -> None:
    codes = {e["code"] for e in _core.error_codes()}
    missing = sorted(c.value for c in Code if c.value not in codes)
    assert missing == []


def test_catalogue_entries_are_well_formed() -> None:
    entries = _core.error_codes()
    assert len({e["code"] for e in entries}) == len(entries)
    for e in entries:
        assert set(e) == {"code", "status", "title", "retryable"}
        assert 400 <= e["status"] <= 599 and e["title"]
        if e["status"] >= 500:
            assert e["retryable"], e["code"]


def test_hermes_error_takes_status_and_title_from_the_catalogue() -> None:
    err = HermesError(Code.AUTH_FORBIDDEN, "admin only")
    assert (err.status, err.title) == (catalogue()["auth.forbidden"].status,
                                       catalogue()["auth.forbidden"].title)
    try:
        HermesError("no.such_code")
    except KeyError:
        pass
    else:
        raise AssertionError("an unknown code must fail where it is raised")
