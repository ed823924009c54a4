"""The prefix cache's bookkeeping on small tensors: longest match, redundant prefixes, LRU by bytes."""

import torch

from pipelines.llm.local.prefix_cache import PrefixCache, common_prefix


def states(n: int, value: float = 0.0):
    """Two layers of fake states for ``n`` tokens: 2 * 2 * n * 4 floats of 4 bytes = 64 * n bytes."""
    return [(torch.full((1, 1, n, 4), value), torch.full((1, 1, n, 4), value)) for _ in range(2)]


def ids(*tokens):
    return torch.tensor(tokens, dtype=torch.long)


def test_common_prefix():
    assert common_prefix(ids(1, 2, 3), ids(1, 2, 4, 5)) == 2
    assert common_prefix(ids(1, 2), ids(1, 2, 3)) == 2
    assert common_prefix(ids(9), ids(1)) == 0 and common_prefix(ids(), ids(1)) == 0


def test_lookup_finds_the_longest_shared_prefix():
    cache = PrefixCache(10**6)
    cache.store(ids(1, 2, 3), states(3, 1.0))
    cache.store(ids(1, 5, 6, 7), states(4, 2.0))
    kv, n = cache.lookup(ids(1, 5, 6, 9))
    assert n == 3 and kv[0][0][0, 0, 0, 0] == 2.0
    assert cache.lookup(ids(8, 8)) == (None, 0)


def test_an_extended_sequence_replaces_its_prefix():
    cache = PrefixCache(10**6)
    cache.store(ids(1, 2, 3), states(3))
    cache.store(ids(1, 2, 3, 4, 5), states(5))
    assert len(cache) == 1 and cache.nbytes == 64 * 5


def test_least_recently_used_entries_go_first_beyond_the_budget():
    cache = PrefixCache(64 * 10)
    cache.store(ids(1, 1, 1, 1), states(4))
    cache.store(ids(2, 2, 2, 2), states(4))
    cache.lookup(ids(1, 1))  # touch the first: the second is now the oldest
    cache.store(ids(3, 3, 3, 3), states(4))
    assert len(cache) == 2 and cache.evictions == 1 and cache.nbytes == 64 * 8
    assert cache.lookup(ids(2, 2))[1] == 0 and cache.lookup(ids(1, 1))[1] == 2
    cache.store(ids(4,) * 20, states(20))  # larger than the whole budget: not kept
    assert cache.nbytes == 64 * 8


def test_rows_joining_and_leaving_a_running_batch_match_generate(tiny_model_dir, greedy_alone):
    """Requests join between steps, end at their own budgets or end-of-turn, the last row moves into a
    freed slot, and later turns start from the cache: every result equals ``model.generate`` alone."""
    from transformers import AutoModelForCausalLM

    from pipelines.llm.local.batching import GenerationRequest
    from pipelines.llm.local.decoder import BatchDecoder

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    eos = model.config.eos_token_id
    gen = torch.Generator().manual_seed(1)

    def alone(prompt, max_new):
        return greedy_alone(model, prompt, max_new, eos)

    prompts = [torch.randint(0, 4000, (n,), generator=gen).tolist() for n in (5, 40, 9, 23, 14)]
    budgets = [30, 3, 12, 20, 6]
    cache = PrefixCache(10**9)
    decoder = BatchDecoder(model, eos=eos, slots=3, cache=cache)
    requests = [GenerationRequest(p, m) for p, m in zip(prompts, budgets)]
    waiting, ended, rows_seen = list(requests), [], set()
    decoder.add(waiting.pop(0))
    decoder.step()  # the first row runs alone for a while before the others join
    decoder.step()
    while waiting or len(decoder):
        while waiting and len(decoder) < decoder.slots:
            if decoder.add(waiting.pop(0)):
                ended.append(True)
        rows_seen.add(len(decoder))
        ended += decoder.step()
    assert rows_seen >= {3} and len(decoder) == 0
    assert [r.result for r in requests] == [alone(p, m) for p, m in zip(prompts, budgets)]
    assert all(r.cached == 0 for r in requests)

    # the next turn of each: its history (prompt + answer) comes from the cache
    followups = [GenerationRequest(r.ids + r.result + [11, 12, 13], 8) for r in requests[:3]]
    for request in followups:
        decoder.add(request)
    while len(decoder):
        decoder.step()
    for request, first in zip(followups, requests[:3]):
        assert request.cached == len(first.ids) + len(first.result) - 1
        assert request.result == alone(request.ids, 8)


def test_min_new_holds_back_the_end_of_turn_token_as_generate_does(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from pipelines.llm.local.batching import GenerationRequest
    from pipelines.llm.local.decoder import BatchDecoder

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompt = torch.randint(0, 4000, (12,), generator=torch.Generator().manual_seed(2)).tolist()
    ids = torch.tensor([prompt])

    def generate(eos, **kwargs):
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                             eos_token_id=eos, pad_token_id=0, **kwargs)
        return out[0, len(prompt):].tolist()

    eos = generate(None)[2]  # a token the model does pick: taken as the end of turn, the turn ends there
    assert len(generate(eos)) <= 3
    held = generate(eos, min_new_tokens=8)
    assert len(held) >= 8 and eos not in held[:8]
    decoder = BatchDecoder(model, eos=eos, slots=2, cache=None)
    short, long = GenerationRequest(prompt, 12), GenerationRequest(prompt, 12, min_new=8)
    for request in (short, long):
        decoder.add(request)
    while len(decoder):
        decoder.step()
    assert short.result == generate(eos) and long.result == held
