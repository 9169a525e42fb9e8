"""The step-variant search: each framework's training step beside every other way of writing it.

For one model (lenet5, resnet8, resnet20, resnet18) on real MNIST, batch 32, SGD lr 0.01
momentum 0.9, from the same canonical weights and the same sample order, each framework's default
step (its pybench backend, driven as `pybench.training` drives it: `train_step`, then
`synchronize` before every clock read, the rounds continuing one epoch) runs beside the other ways
of writing the same step that could be faster:

- torch: memory layout, thread count, zero_grad, the optimizer's kernels, the gather,
  `torch.compile` (opt-in: it compiles for tens of seconds);
- jax: the backend's activation layout; for LeNet-5 also hand-written steps that differ in one
  choice each (layout, precision, loss, gather, donation, the step number, one jitted program or
  two); XLA's process options, each in a worker process of its own;
- knet: Julia and OpenBLAS thread counts, and a plain-Knet loop inside Julia (tools/step_search/knet_plain.jl);
- the yardstick: Keras 3 on JAX and on PyTorch, the same model in its own layers and `fit` loop.

Rounds alternate between the variants in an order rotated every round, so that a noisy, shared
machine hurts all of them alike. Every variant must compute the same first loss as the default (a
candidate cannot win by computing something else), and the default must be within SLOWEST_RATIO
of the fastest candidate of its table: the check that a faster form has been found and not
adopted. Exit status 1 when a default is slower than that, 2 on bad input.

    PYBENCH_DATA_DIR=../shared/datasets python tools/step_search --model resnet8

The opt-in benchmark tests/benchmarks/test_bench_step_variants.py runs the same search under
pytest-benchmark. Re-run it on another machine (a GPU box may prefer another layout) before
changing a backend's default.

Modules: `common` (settings, inputs, each framework's default step), `torch_variants`,
`jax_variants`, `knet_variants`, `keras_models` (the yardstick), `processes` (worker processes
for options read at start-up), `rounds` (interleaving, summaries, the verdict), `tables` (what
each table runs, and its Markdown), `cli` (the command line; `__main__` runs it).
"""

from step_search.common import (
    DEFAULT_ROUNDS,
    DEFAULT_STEPS,
    FALLBACK_STEPS,
    SLOWEST_RATIO,
    TABLES,
    Round,
    Search,
    make_inputs,
)
from step_search.rounds import Drive, interleaved_rounds, summarize, verdict
from step_search.tables import run_table, table_skip_reason

__all__ = ["DEFAULT_ROUNDS", "DEFAULT_STEPS", "FALLBACK_STEPS", "SLOWEST_RATIO", "TABLES", "Drive",
           "Round", "Search", "interleaved_rounds", "make_inputs", "run_table", "summarize",
           "table_skip_reason", "verdict"]
