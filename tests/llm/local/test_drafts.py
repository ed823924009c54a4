"""Prompt-lookup drafts: what followed the latest earlier occurrence of a row's last tokens."""

from pipelines.llm.local.drafts import PromptLookup


def test_prompt_lookup_drafts_what_followed_the_latest_match():
    lookup = PromptLookup([1, 2, 3, 4, 5, 9, 2, 3, 4, 7, 8, 2, 3])
    assert lookup.draft(3) == [4, 7, 8]  # "2 3" last came before "4 7 8" (the latest, not the first)
    lookup.extend([4])
    assert lookup.draft(2) == [7, 8]  # the 3-gram "2 3 4" now decides
    assert PromptLookup([5, 6, 7]).draft(4) == []  # nothing seen twice
    lookup = PromptLookup([1, 1])
    assert lookup.draft(5) == [1]  # a match right before the end yields what exists after it
