"""The selection rule of SSD and ASSD as pure functions.

``percentile`` gives ASSD's exact adaptive α (the p-th percentile of
I_Df / I_D); ``dampening`` selects and dampens; ``blocks`` walks the flat
parameter vector in bounded-memory blocks. Nothing here knows a loader,
a model class, a table or the CLI.
"""
