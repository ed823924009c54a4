"""Which (domain, category) targets a synthesis run drafts for."""

from pipelines.synthesis.config import SynthesizeParams
from pipelines.synthesis.loop import resolve_targets


def test_default_targets_alternate_domains_and_cap():
    assert resolve_targets(SynthesizeParams()) == [("software", "algorithm"), ("research", "research"),
                                                   ("software", "application_development")]
    every = resolve_targets(SynthesizeParams(max_categories=0))
    assert len(every) == 10 and {d for d, _ in every} == {"software", "research"}
    custom = SynthesizeParams(targets=[{"category": "data_analysis", "domain": "software"}, {"category": "algorithm"}])
    assert resolve_targets(custom) == [("software", "data_analysis"), ("software", "algorithm")]
