"""The batch decoder on a tiny model: rows joining and leaving, cached prefixes, min_new, drafts and packed
products all give the same greedy tokens as ``model.generate`` alone."""

import torch

from pipelines.llm.local import packed
from pipelines.llm.local.prefix_cache import PrefixCache


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


def test_draft_steps_match_generate(tiny_model_dir, greedy_alone):
    """Rows with prompt-lookup drafts (and packed products where MKL has them) join and leave a running
    batch; every result equals ``model.generate`` alone, and some drafts were kept."""
    from transformers import AutoModelForCausalLM

    from pipelines.llm.local.batching import GenerationRequest
    from pipelines.llm.local.decoder import BatchDecoder

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    eos = model.config.eos_token_id
    gen = torch.Generator().manual_seed(3)

    def alone(prompt, max_new):
        return greedy_alone(model, prompt, max_new, eos)

    # repeated phrases, as in command output an agent reads back
    prompts = [torch.randint(0, 4000, (n,), generator=gen).tolist() * 3 for n in (4, 11, 7, 9)]
    budgets = [40, 25, 33, 18]
    linears = packed.PackedLinears(model, rows=3 * 4, min_weights=1) if packed.available() else None
    decoder = BatchDecoder(model, eos=eos, slots=3, cache=PrefixCache(10**9), packed=linears, draft_tokens=3)
    requests = [GenerationRequest(p, m) for p, m in zip(prompts, budgets)]
    waiting = list(requests)
    while waiting or len(decoder):
        while waiting and len(decoder) < decoder.slots:
            decoder.add(waiting.pop(0))
        decoder.step()
    assert [r.result for r in requests] == [alone(p, m) for p, m in zip(prompts, budgets)]
    assert decoder.drafted > 0 and decoder.accepted > 0  # some steps took more than one token per row

    followup = GenerationRequest(requests[0].ids + requests[0].result + [5, 6, 7], 12)
    decoder.add(followup)
    while len(decoder):
        decoder.step()
    assert followup.cached > 0 and followup.result == alone(followup.ids, 12)
