"""Draft tokens guessed from a row's own history (prompt-lookup decoding), for a decoding step to verify.

A step can verify draft tokens: each row is fed its last token plus a few tokens guessed from its own
history, and keeps every argmax up to the first wrong guess, so a step yields one token per row or
more, never different ones.
"""

from __future__ import annotations


class PromptLookup:
    """Draft tokens for one row from its own history (prompt-lookup decoding): the tokens that
    followed the latest earlier occurrence of its last ``n`` tokens (else ``n - 1``, ... 1).

    Agent turns copy a great deal from their context (file contents, command output, earlier calls),
    so drafts taken from the context are often right; a step verifies them all at once and keeps
    the longest prefix the model agrees with, which greedy decoding would have produced anyway.
    """

    def __init__(self, tokens: list[int], n: int = 3):
        self.tokens: list[int] = []
        self.n = n
        self._index: list[dict[tuple[int, ...], int]] = [{} for _ in range(n)]  # m-gram -> position after it
        self.extend(tokens)

    def extend(self, new: list[int]) -> None:
        start = len(self.tokens)
        self.tokens.extend(new)
        tokens = self.tokens
        for end in range(max(1, start), len(tokens)):  # every m-gram that now has a token after it
            for m in range(1, min(self.n, end) + 1):
                self._index[m - 1][tuple(tokens[end - m:end])] = end

    def draft(self, k: int) -> list[int]:
        tokens = self.tokens
        for m in range(min(self.n, len(tokens)), 0, -1):
            after = self._index[m - 1].get(tuple(tokens[-m:]))
            if after is not None:
                return tokens[after:after + k]
        return []
