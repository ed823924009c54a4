"""Packed products: what ``nn.Linear`` gives, each row standing alone, padded or not."""

import pytest
import torch

from pipelines.llm.local import packed


@pytest.mark.skipif(not packed.available(), reason="this torch build has no MKL packed GEMM")
def test_packed_products_agree_with_linear_and_each_row_stands_alone():
    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(96, 80), torch.nn.Linear(80, 70, bias=False)).eval()
    x = torch.randn(8, 96, generator=gen)
    plain = model(x)
    linears = packed.PackedLinears(model, rows=8, min_weights=1)
    assert linears.modules == 2 and linears.packed_bytes > 0
    assert torch.equal(model(x), plain)  # inactive: the modules' own products
    plain_two = model(x[:2])
    with torch.inference_mode(), linears.active():
        full = model(x)
        five = model(x[:5])  # padded to 8 rows
        other = model(torch.cat([x[:5], torch.randn(3, 96, generator=gen)]))
        two = model(x[:2])  # under half the rows: the module's own product
    torch.testing.assert_close(full, plain, rtol=1e-5, atol=1e-5)
    assert torch.equal(five, full[:5]) and torch.equal(other[:5], five)
    assert torch.equal(two, plain_two)
