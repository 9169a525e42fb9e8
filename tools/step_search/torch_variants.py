"""PyTorch candidates: the backend's own module, stepped in one of several ways."""

from __future__ import annotations

from dataclasses import dataclass

from step_search.common import BATCH, OPTIMIZER, Inputs, Round, Search, Variant, timed_steps


@dataclass(frozen=True)
class TorchVariant:
    channels_last: bool = False
    threads: int | None = None  # torch.set_num_threads for the round (None: as it is)
    set_to_none: bool = True
    optimizer: str = "foreach"  # "foreach", "for-loop" (foreach=False), "fused"
    gather: str = "index_select"  # or "indexing": images[idx]
    compile: bool = False


def torch_variant(inputs: Inputs, search: Search, v: TorchVariant) -> Variant:
    import torch
    import torch.nn.functional as F

    from pybench.backends.torch_backend import build_module

    images, labels = torch.from_numpy(inputs.images), torch.from_numpy(inputs.labels)
    if v.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    order = torch.from_numpy(inputs.order)
    kwargs = {"foreach": {"foreach": True}, "for-loop": {"foreach": False},
              "fused": {"fused": True}}[v.optimizer]
    weights = {k: torch.from_numpy(a) for k, a in {**inputs.params, **inputs.buffers}.items()}

    def run() -> Round:
        module = build_module(inputs.model, inputs.in_shape, inputs.num_classes)
        module.load_state_dict(weights, strict=False)  # strict=False: num_batches_tracked
        module.train()
        if v.channels_last:
            module = module.to(memory_format=torch.channels_last)
        net = torch.compile(module) if v.compile else module
        opt = torch.optim.SGD(module.parameters(), lr=OPTIMIZER.lr,
                              momentum=OPTIMIZER.momentum, **kwargs)
        threads = torch.get_num_threads()
        if v.threads:
            torch.set_num_threads(v.threads)

        def step(i):
            idx = order[i * BATCH:(i + 1) * BATCH]
            if v.gather == "indexing":
                x, y = images[idx], labels[idx]
            else:
                x, y = images.index_select(0, idx), labels.index_select(0, idx)
            opt.zero_grad(set_to_none=v.set_to_none)
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            return loss.detach()

        try:
            return timed_steps(step, lambda loss: None, search.steps)
        finally:
            torch.set_num_threads(threads)

    # torch.compile compiles in the first step of the first round (later rounds' new modules
    # find dynamo's cache): that step's time is reported apart as the compile time, and the
    # step time is the median of the steps after each round's first.
    run.compiles = v.compile  # type: ignore[attr-defined]
    return run


def torch_variants(search: Search) -> dict[str, TorchVariant]:
    variants = {
        "by hand: channels_last": TorchVariant(channels_last=True),
        "by hand: contiguous NCHW": TorchVariant(),
        "by hand: channels_last, 1 thread": TorchVariant(channels_last=True, threads=1),
        "by hand: channels_last, 2 threads": TorchVariant(channels_last=True, threads=2),
        "by hand: channels_last, zero_grad(set_to_none=False)":
            TorchVariant(channels_last=True, set_to_none=False),
        "by hand: channels_last, SGD foreach=False":
            TorchVariant(channels_last=True, optimizer="for-loop"),
        "by hand: channels_last, SGD fused=True":
            TorchVariant(channels_last=True, optimizer="fused"),
        "by hand: channels_last, batch by indexing images[idx]":
            TorchVariant(channels_last=True, gather="indexing"),
    }
    if search.compile:
        variants["by hand: torch.compile, channels_last"] = TorchVariant(channels_last=True,
                                                                          compile=True)
    return variants
