"""The claims plugin: the marker, its scope rules, and the report section."""

from __future__ import annotations

CLAIM_TESTS = '''
import pytest

@pytest.mark.claim("gqa-kv-ratio", scope="toy", source="ainslie-2023-gqa",
                   text="GQA's KV cache is H_kv/H_q of MHA's", not_claimed="no serving throughput")
def test_witness():
    assert 8 / 32 == 0.25

@pytest.mark.claim("never-true", scope="exact", source="dao-2022", text="a claim whose test fails")
def test_broken_witness():
    assert False
'''


def test_marker_claims_are_reported_with_their_evidence(project):
    project.pytester.makepyfile(test_claims_here=CLAIM_TESTS)
    project.copy_level("level0")
    result, ladder = project.ladder("katas", "test_claims_here.py", "-k", "qk_scores or witness",
                                    "--attnkata-ladder")
    claims = {c["id"]: c for c in ladder["claims"]}
    assert claims["gqa-kv-ratio"]["witnessed"] is True
    assert claims["gqa-kv-ratio"]["evidence"] == ["test_claims_here.py::test_witness"]
    assert claims["never-true"]["witnessed"] is False
    assert claims["scores-are-dot-products"]["witnessed"] is True
    result.stdout.fnmatch_lines(["*Claims your code now witnesses*", "*toy*GQA's KV cache*ainslie-2023-gqa*"])
    section = result.stdout.str().split("Claims your code now witnesses")[1]
    assert "a claim whose test fails" not in section


def test_measured_claim_without_environment_is_refused(project):
    project.pytester.makepyfile(test_measured='''
import pytest

@pytest.mark.claim("fast", scope="measured", source="dao-2022", text="370 TFLOP/s")
def test_fast():
    pass
''')
    result = project.run("test_measured.py")
    assert result.ret != 0
    assert "records no environment" in result.stdout.str() + result.stderr.str()


def test_claims_marker_is_registered(project):
    result = project.run("--markers")
    result.stdout.fnmatch_lines(["*@pytest.mark.claim(id, scope, source*"])
