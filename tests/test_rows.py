"""Row identity (assd.verify.rows): equal keys exactly for rows with equal bytes."""

import numpy as np
import torch

from assd.verify.rows import row_keys


def test_keys_match_exactly_where_the_bytes_match():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(40, 3, 2, generator=g)
    x = torch.cat([base, base[[3, 7, 7]]])  # three duplicates
    x[-1, 0, 0] = torch.nextafter(x[-1, 0, 0], torch.tensor(9.0))  # one bit away: not equal
    y = torch.randint(0, 3, (43,), generator=g)
    y[40] = y[3]
    y[41] = (y[7] + 1) % 3  # same input, another label
    for keys, labels in ((row_keys(x), None), (row_keys(x, y), y)):
        rows = x.reshape(43, -1).numpy()
        by_bytes = [r.tobytes() + (b"" if labels is None else labels[i].numpy().tobytes())
                    for i, r in enumerate(rows)]  # fmt: skip
        want = np.array([[a == b for b in by_bytes] for a in by_bytes])
        got = (keys[:, None] == keys[None, :]).numpy()
        assert (got == want).all()
    assert row_keys(x)[41] == row_keys(x)[7] and row_keys(x, y)[41] != row_keys(x, y)[7]
    assert row_keys(x)[42] != row_keys(x)[7]


def test_half_precision_and_integer_rows():
    x = torch.tensor([[1.5, 2.0], [1.5, 2.0], [0.0, -0.0]], dtype=torch.float16)
    keys = row_keys(x)
    assert keys[0] == keys[1] and keys[0] != keys[2]
    assert row_keys(x[2:].float())[0] != row_keys(torch.zeros(1, 2))[0]  # -0.0 has other bits
    tokens = torch.tensor([[5, 6, 7], [5, 6, 7], [5, 6, 8]])
    k = row_keys(tokens)
    assert k[0] == k[1] != k[2] and len(row_keys(torch.empty(0, 3))) == 0
