"""The per-sample engine: sums of squared per-sample gradients without one backward per sample.

``engine`` drives a pass; ``plan`` decides which layers the hooks own;
``layers``, ``direct``, ``products``, ``conv``, ``attention`` and ``broadcast``
form the squares for each layer family; ``records`` checks what the hooks saw;
``fallback`` covers everything else with ``torch.func`` or a loop.
"""
