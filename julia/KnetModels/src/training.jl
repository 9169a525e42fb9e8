# Loss, one training step, prediction and weight export: the Julia side of pybench's Backend
# contract (pybench/backends/contract.py), with PyTorch's optimizer and loss semantics.
#
# The optimizers are PyTorch's formulas written out here (torch.optim's single-tensor SGD, Adam
# and AdamW), not Knet's `Momentum`/`Adam`: Knet's momentum keeps v = gamma v - lr g, which folds
# the learning rate into the velocity and so differs from PyTorch's b = mu b + g; w -= lr b as
# soon as the learning rate changes from step to step, and pybench's schedules change it every
# step. The rate of each step comes from Python with the epoch order (`put_order(order, lrs)`).
#
# - SGD: b = g (first step), then b = mu b + g; with nesterov d = g + mu b, else d = b;
#   w -= lr d. weight_decay adds weight_decay * w to g first (L2, torch's SGD).
# - Adam: m = lerp(m, g, 1 - b1); v = b2 v + (1 - b2) g.^2; w -= lr/(1 - b1^t) * m ./
#   (sqrt.(v) / sqrt(1 - b2^t) .+ eps). weight_decay as for SGD. AdamW: w *= 1 - lr wd first
#   (decoupled decay), then the Adam step on the plain gradient.
# Every parameter gets the same rule (PyTorch's single parameter group).

"""pybench's model families (pybench/models/__init__.py `FAMILIES`), as types: `build_model`
dispatches on them, never on a name."""
abstract type Family end
struct CNNFamily <: Family end
struct ResNetFamily <: Family end
struct DenseNetFamily <: Family end
const FAMILIES = Dict("cnn" => CNNFamily(), "resnet" => ResNetFamily(), "densenet" => DenseNetFamily())

"""
    build_model(kind, weights, buffers, block_strides, atype; family="resnet", bn_momentum=0.1,
                bn_eps=1e-5, ...)

`kind` is the model's name and `family` pybench's family of it ("cnn": LeNet-5 and CNN files,
"resnet" or "densenet"). Plain CNNs take their `ops` string (see `CNN`); ResNets take
`block_strides` (per block) and the stem's `stem_stride`, `stem_padding` and `stem_pool` (see
`ResNet`); DenseNets `block_layers` and `stem_pool`. `frozen` is the comma-separated canonical
names of the parameters that do not train (`--trainable`). Weights in Knet layout, see
`KnetModels`.
"""
function build_model(kind::AbstractString, weights::AbstractDict, buffers::AbstractDict,
                     block_strides::AbstractVector{<:Integer}, atype::Type; family::AbstractString="resnet",
                     frozen::AbstractString="", settings...)
    # One comma-separated string: it crosses from Python the same way with any juliacall.
    names = isempty(frozen) ? Set{String}() : Set{String}(split(frozen, ","))
    haskey(FAMILIES, family) || error("unknown model family $family for $kind")
    return build(FAMILIES[family], weights, buffers, block_strides, atype, names; settings...)
end

build(::CNNFamily, weights, buffers, block_strides, atype, frozen; ops::AbstractString, bn_momentum=0.1,
      bn_eps=1e-5, ignored...) =
    CNN(weights, buffers, ops, atype; frozen=frozen, momentum=bn_momentum, eps=bn_eps)

build(::ResNetFamily, weights, buffers, block_strides, atype, frozen; bn_momentum=0.1, bn_eps=1e-5,
      stem_stride=1, stem_padding=1, stem_pool=Int[], ignored...) =
    ResNet(weights, buffers, block_strides, atype; stem_stride=stem_stride, stem_padding=stem_padding,
           stem_pool=stem_pool, frozen=frozen, momentum=bn_momentum, eps=bn_eps)

build(::DenseNetFamily, weights, buffers, block_strides, atype, frozen; bn_momentum=0.1, bn_eps=1e-5,
      block_layers=Int[], stem_pool=Int[], ignored...) =
    DenseNet(weights, buffers, block_layers, atype; stem_pool=stem_pool, frozen=frozen, momentum=bn_momentum,
             eps=bn_eps)

"""PyTorch's update rule and its hyper-parameters in the element type `T` of the weights
(Float32(5e-4) differs from 5e-4 in the 9th digit, which a Float64 parity trajectory would see).
One type per rule, so that the step dispatches on it (`apply_update!`)."""
abstract type UpdateRule{T<:AbstractFloat} end

"""torch.optim.SGD: momentum (0 for none), Nesterov, L2 weight decay."""
struct SGDRule{T} <: UpdateRule{T}
    momentum::T
    nesterov::Bool
    weight_decay::T
end

"""torch.optim.Adam, or AdamW when `decoupled` (the weight decay applied to the weights, not
added to the gradient)."""
struct AdamRule{T} <: UpdateRule{T}
    beta1::T
    beta2::T
    eps::T
    weight_decay::T
    decoupled::Bool
end

"""The rule `optimizer` ("sgd", "adam" or "adamw") names, in element type `T`."""
function update_rule(::Type{T}, optimizer::AbstractString; momentum, nesterov, beta1, beta2, eps,
                     weight_decay) where {T<:AbstractFloat}
    optimizer == "sgd" && return SGDRule{T}(momentum, nesterov, weight_decay)
    optimizer in ("adam", "adamw") &&
        return AdamRule{T}(beta1, beta2, eps, weight_decay, optimizer == "adamw")
    error("unknown optimizer $optimizer: choose sgd, adam or adamw")
end

"""One parameter's optimizer memory, of the parameter's own array type `A`."""
abstract type OptimizerMemory end

"""SGD's momentum buffer; torch fills it with the first gradient (`started`). Without momentum
it is empty, as torch keeps none."""
mutable struct SGDMemory{A<:AbstractArray} <: OptimizerMemory
    buf::A
    started::Bool
end

"""Adam's first and second moments and its step count."""
mutable struct AdamMemory{A<:AbstractArray} <: OptimizerMemory
    m::A
    v::A
    t::Int
end

"""The memory `rule` keeps for weights `w`, zeroed, on `w`'s device."""
function new_memory(rule::SGDRule, w::AbstractArray)
    buf = rule.momentum != 0 ? zero(w) : similar(w, ntuple(_ -> 0, ndims(w)))
    return SGDMemory(buf, false)
end
new_memory(::AdamRule, w::AbstractArray) = AdamMemory(zero(w), zero(w), 0)

"""The model, its parameters in canonical order with one `OptimizerMemory` each, the update rule, the
default learning rate (for orders put without a schedule), the label smoothing and the array
type. `T` is the element type everything computes in (`eltype(atype)`, Float32 or Float64)."""
struct TrainState{M,T<:AbstractFloat}
    model::M
    params::Vector{Param}
    memory::Vector{OptimizerMemory}
    rule::UpdateRule{T}
    lr::T
    label_smoothing::T
    pos_weight::Any  # multi-label: (findings, 1) weights of positive targets on the device, or nothing
    atype::Type
end

"""The element type a state computes in."""
element_type(state::TrainState{M,T}) where {M,T} = T

"""
    model_params(model) -> Vector{Param}

Trainable `Param`s of a model, in canonical order (frozen weights are bare arrays, left out).
Built with `push!`, not a comprehension:
Julia lowers a comprehension whose body is just the loop variable (`Param[p for ...]`) through
`identity`, and AutoGrad 1.2 defines `identity(::Param)` outside a tape to return the raw array,
so the comprehension yields plain arrays and fails converting them back to `Param`.
"""
function model_params(model)
    params = Param[]
    for (_, layer) in named_layers(model)
        for w in layer_params(layer)
            w isa Param && push!(params, w)
        end
    end
    return params
end
layer_params(c::Conv) = c.b === nothing ? [c.w] : [c.w, c.b]
layer_params(d::Dense) = [d.w, d.b]
layer_params(bn::BatchNorm) = [bn.params]

"""
    init_state(model, atype; optimizer="sgd", lr, momentum, nesterov, weight_decay, beta1, beta2,
               eps, label_smoothing, pos_weight) -> TrainState

`optimizer` is "sgd", "adam" or "adamw" (see the top of this file); `lr` is used only for orders
put without their learning rates. `pos_weight` (one weight per finding, or nothing) weighs the
positive targets of a multi-label task (`bce_with_logits`).
"""
function init_state(model, atype::Type; optimizer::AbstractString="sgd", lr=0.05, momentum=0.9,
                    nesterov::Bool=false, weight_decay=0.0, beta1=0.9, beta2=0.999, eps=1e-8,
                    label_smoothing=0.0, pos_weight=nothing)
    T = eltype(atype)
    rule = update_rule(T, optimizer; momentum=momentum, nesterov=nesterov, beta1=beta1,
                       beta2=beta2, eps=eps, weight_decay=weight_decay)
    params = model_params(model)
    memory = OptimizerMemory[new_memory(rule, value(p)) for p in params]
    weights = pos_weight === nothing ? nothing : convert(atype, reshape(T.(collect(pos_weight)), :, 1))
    return TrainState(model, params, memory, rule, T(lr), T(label_smoothing), weights, atype)
end

"""
    batch_loss(model, x, labels; update_stats=false, label_smoothing=0, pos_weight=nothing)

Mean cross-entropy of a batch: `mean_nll` on (classes, N) scores, 1-based labels. With label
smoothing s, PyTorch's (1 - s) * nll + s * (mean over samples and classes of -log p). Multi-label
targets ((findings, N) 0/1 floats) take `bce_with_logits` instead.
"""
function batch_loss(model, x, labels; update_stats::Bool=false, label_smoothing=0, pos_weight=nothing,
                    seen=nothing)
    scores = model(x; training=true, update_stats=update_stats)
    seen === nothing || (seen[] = value(scores))  # the step's own predictions: count_right!
    labels isa AbstractMatrix && return bce_with_logits(scores, labels, pos_weight)
    logp = logsoftmax(scores; dims=1)
    nll_ = mean_nll(logp, labels)
    label_smoothing == 0 && return nll_
    return (1 - label_smoothing) * nll_ - label_smoothing * sum(logp) / length(logp)
end

"""
    mean_nll(logp, labels)

The mean over samples of -log p(label) for (classes, N) log-probabilities and 1-based labels,
through a one-hot mask built where the labels live. Knet's `nll` gathers the label indices with
host loops: on a GPU it would copy the labels to the host and upload the indices every step.
The final `sum` still returns a host scalar: AutoGrad differentiates a scalar, and CUDA.jl's
reduction to one reads it back (one 4- or 8-byte copy per step, as torch's `loss.item()` would be;
docs/gpu.md).
"""
function mean_nll(logp, labels)
    mask = reshape(labels, 1, :) .== (1:size(logp, 1))  # (classes, N) Bool, on labels' device
    return -sum(logp .* mask) / size(logp, 2)
end

"""
    bce_with_logits(x, y, pos_weight)

PyTorch's `BCEWithLogitsLoss` (pybench/tasks.py): the mean over findings and samples of
(1 - y) x + (1 + (w - 1) y) (log(1 + exp(-|x|)) + max(-x, 0)) for (findings, N) logits `x`,
0/1 targets `y` and per-finding weights `w` ((findings, 1), or `nothing` for 1). Like `mean_nll`,
the final `sum` returns a host scalar.
"""
function bce_with_logits(x, y, pos_weight)
    soft = log1p.(exp.(-abs.(x))) .+ relu.(-x)
    pos_weight === nothing && return sum((1 .- y) .* x .+ soft) / length(x)
    return sum((1 .- y) .* x .+ (1 .+ (pos_weight .- 1) .* y) .* soft) / length(x)
end

"""
    apply_update!(rule, memory, w, g, lr)

PyTorch's update of weights `w` (in place) from gradient `g` at learning rate `lr`, one method
per rule.
"""
function apply_update!(rule::SGDRule, memory::SGDMemory, w, g, lr)
    if rule.weight_decay != 0
        g = g .+ rule.weight_decay .* w
    end
    if rule.momentum != 0
        if memory.started
            memory.buf .= rule.momentum .* memory.buf .+ g
        else
            copyto!(memory.buf, g)
            memory.started = true
        end
        g = rule.nesterov ? g .+ rule.momentum .* memory.buf : memory.buf
    end
    w .-= lr .* g
    return nothing
end

function apply_update!(rule::AdamRule, memory::AdamMemory, w, g, lr)
    if rule.decoupled
        w .*= 1 - lr * rule.weight_decay
    elseif rule.weight_decay != 0
        g = g .+ rule.weight_decay .* w
    end
    memory.t += 1
    memory.m .+= (1 - rule.beta1) .* (g .- memory.m)  # torch's lerp_ for a weight below 0.5
    memory.v .= rule.beta2 .* memory.v .+ (1 - rule.beta2) .* g .* g
    step_size = lr / (1 - rule.beta1^memory.t)
    denom = sqrt.(memory.v) ./ sqrt(1 - rule.beta2^memory.t) .+ rule.eps
    w .-= step_size .* (memory.m ./ denom)
    return nothing
end

"""Data put on the device for another element type than the state's would silently mix
precisions on the CPU and fail inside cuDNN on the GPU (its kernels need one type): refuse it."""
function check_element_type(state::TrainState, data::DeviceData)
    T, D = element_type(state), input_eltype(data)
    T == D || error("the data is $D but the model computes in $T: call put_data with the " *
                    "array type of the state (put_data after init_state)")
    return nothing
end

"""
    train_step!(state, data, plan, step, batch_size) -> (state, loss::T)

One optimizer step on the samples at positions order[step*batch_size+1 : (step+1)*batch_size]
(`step` 0-based, as pybench counts) of the epoch plan (`put_order`), at the plan's learning rate
for this step. BatchNorm running statistics move during the forward pass, as in PyTorch. The
loss is the batch's mean cross-entropy before the update. The batch is picked on the device
(`select_batch`); the loss's last reduction returns a host scalar (see `mean_nll`), so on the GPU
this step ends with one small read.
"""
function train_step!(state::TrainState, data::DeviceData, plan::EpochPlan, step::Integer,
                      batch_size::Integer)
    check_element_type(state, data)
    T = element_type(state)
    x, labels = select_batch(data, batch_positions(plan.order, step, batch_size))
    lr = plan.lrs === nothing ? state.lr : T(plan.lrs[step+1])
    set_step!(state.model, plan.first_step + step)  # the run's step: dropout's masks
    seen = Ref{Any}(nothing)
    tape = @diff batch_loss(state.model, x, labels; update_stats=true, seen=seen,
                            label_smoothing=state.label_smoothing, pos_weight=state.pos_weight)
    count_right!(seen[], labels)
    for (p, memory) in zip(state.params, state.memory)
        g = grad(tape, p)
        g === nothing && continue  # AutoGrad returns nothing for a parameter the loss ignores
        apply_update!(state.rule, memory, value(p), AutoGrad.full(g), lr)
    end
    note_device_memory!(state.atype)
    return state, T(value(tape))
end

# The training predictions since the last `take_train_hits!`: right ones, and how many.
const TRAIN_HITS = Ref(0)
const TRAIN_COUNTED = Ref(0)

"""
    count_right!(scores, labels)

Adds a step's right training predictions to TRAIN_HITS: the row of the largest score (the
first, as torch and JAX break ties) against the 1-based label, or for multi-label targets each
finding's decision (score >= 0) against its target. On a GPU the count is one small read.
"""
function count_right!(scores, labels)
    if labels isa AbstractMatrix
        TRAIN_HITS[] += Int(sum((scores .>= 0) .== (labels .> 0.5)))
    else
        predicted = vec(map(index -> index[1], argmax(scores; dims=1)))
        TRAIN_HITS[] += Int(sum(predicted .== labels))
    end
    TRAIN_COUNTED[] += length(labels)
    return nothing
end

"""
    take_train_hits!() -> (right, counted)

The training predictions counted since the last call, which starts the count anew (the
backend contract's `train_hits`).
"""
function take_train_hits!()
    counts = (TRAIN_HITS[], TRAIN_COUNTED[])
    TRAIN_HITS[] = 0
    TRAIN_COUNTED[] = 0
    return counts
end

train_step!(state::TrainState, data::DeviceData, order::AbstractVector{<:Integer},
            step::Integer, batch_size::Integer) =
    train_step!(state, data, put_order(order), step, batch_size)

"""
    forward(state, images; training) -> Array{T} (classes, N)

Scores for one batch (W, H, C, N) in training mode (batch statistics) or eval mode, changing
nothing in `state`: running statistics are only updated by `train_step!`. The images are
converted to the state's element type `T`, and so are the scores.
"""
function forward(state::TrainState, images; training::Bool)
    x = to_device(images, state.atype)
    set_step!(state.model, 0)  # train-mode forwards draw step 0's dropout masks, everywhere
    return Array{element_type(state)}(state.model(x; training=training, update_stats=false))
end

"""
    predict(state, data, batch_size) -> Array{T} (classes, N)

Eval-mode scores for every sample of `data`, in order, computed batch by batch.
"""
predict(state::TrainState, data::DeviceData, batch_size::Integer) =
    evaluate(x -> state.model(x; training=false), state, data, batch_size)

"""
    embed(state, data, batch_size) -> Matrix (features, N)

Eval-mode penultimate features (what the classifier sees) of every sample of `data`, in order.
"""
embed(state::TrainState, data::DeviceData, batch_size::Integer) =
    evaluate(x -> features(state.model, x; training=false), state, data, batch_size)

"""`f` (eval-mode scores or features) over `data` batch by batch, as a host matrix (·, N)."""
function evaluate(f, state::TrainState, data::DeviceData, batch_size::Integer)
    check_element_type(state, data)
    n = size(data.images, 4)
    T = element_type(state)
    # The outputs stay on the device until the end: one copy to the host, as torch and JAX make.
    chunks = [f(pixels(data.images[:, :, :, i:min(i + batch_size - 1, n)], data.table))
              for i in 1:batch_size:n]
    return Array{T}(reduce(hcat, chunks))
end

"""
    export_weights(state) -> (params::Dict, buffers::Dict)

Host arrays of the state's element type `T` under canonical names, in Knet layout (conv weights
(kW, kH, Cin, Cout), everything else canonical); pybench/backends/knet_layout.py converts them
back.
"""
function export_weights(state::TrainState)
    T = element_type(state)
    params = Dict{String,Array{T}}()
    buffers = Dict{String,Array{T}}()
    for (name, layer) in named_layers(state.model)
        export_into!(params, layer, name)
        layer isa BatchNorm && export_buffers_into!(buffers, layer, name)
    end
    return params, buffers
end
