# Loss, one training step, prediction and weight export: the Julia side of pybench's Backend
# contract (pybench/backends/contract.py), with PyTorch's optimizer semantics.
#
# Optimizers, compared with PyTorch (Knet 1.4.10 src/train20/update.jl, `_update!`):
# - Knet Momentum: v = gamma v - lr g; w += v (v starts at 0). PyTorch SGD: b = mu b + g (b
#   starts at g); w -= lr b. With v = -lr b these are the same updates at a constant lr, so
#   Knet's `Momentum` is used with gamma set explicitly (its default is 0.95, not ours).
# - Knet Adam: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g.^2; w -= lr * mhat ./ (sqrt.(vhat) .+ eps)
#   with mhat = m/(1-b1^t), vhat = v/(1-b2^t): eps outside the square root of the corrected
#   second moment, as PyTorch, so Knet's `Adam` is used.
# - Neither has weight decay: g += weight_decay * w is added here, for every parameter (PyTorch's
#   L2 with a single parameter group). A Param without `opt` would silently get SGD(lr=0.1), so
#   every Param gets its own optimizer at `init_state`.

"""
    build_model(kind, weights, buffers, block_strides, atype; bn_momentum=0.1, bn_eps=1e-5)

`kind` is "lenet5" or a ResNet name; `block_strides` the per-block strides for ResNets (ignored
for LeNet-5). Weights in Knet layout, see `KnetModels`.
"""
function build_model(kind::AbstractString, weights::AbstractDict, buffers::AbstractDict,
                     block_strides::AbstractVector{<:Integer}, atype::Type;
                     bn_momentum=0.1, bn_eps=1e-5, conv1_padding=2)
    kind == "lenet5" && return LeNet5(weights, atype; conv1_padding=conv1_padding)
    return ResNet(weights, buffers, block_strides, atype; momentum=bn_momentum, eps=bn_eps)
end

"""The model, its parameters in canonical order, the L2 weight decay and the array type. `T`
is the element type everything computes in (`eltype(atype)`, Float32 or Float64)."""
struct TrainState{M,T<:AbstractFloat}
    model::M
    params::Vector{Param}
    weight_decay::T
    atype::Type
end

"""The element type a state computes in."""
element_type(state::TrainState{M,T}) where {M,T} = T

"""
    model_params(model) -> Vector{Param}

Trainable `Param`s of a model, in canonical order. Built with `append!`, not a comprehension:
Julia lowers a comprehension whose body is just the loop variable (`Param[p for ...]`) through
`identity`, and AutoGrad 1.2 defines `identity(::Param)` outside a tape to return the raw array,
so the comprehension yields plain arrays and fails converting them back to `Param`.
"""
function model_params(model)
    params = Param[]
    for (_, layer) in named_layers(model)
        append!(params, layer_params(layer))
    end
    return params
end
layer_params(c::Conv) = c.b === nothing ? [c.w] : [c.w, c.b]
layer_params(d::Dense) = [d.w, d.b]
layer_params(bn::BatchNorm) = [bn.params]

"""A fresh Knet optimizer with PyTorch's semantics (see the note at the top of this file)."""
function make_optimizer(name::AbstractString; lr, momentum=0.9, beta1=0.9, beta2=0.999, eps=1e-8)
    name == "sgd" && return Momentum(lr=lr, gamma=momentum)
    name == "adam" && return Adam(lr=lr, beta1=beta1, beta2=beta2, eps=eps)
    error("unknown optimizer $name: choose sgd or adam")
end

"""
    init_state(model; optimizer="sgd", lr, momentum, weight_decay, beta1, beta2, eps) -> TrainState

Gives each Param its own optimizer instance (Knet keeps the velocity/moments inside it).
"""
function init_state(model, atype::Type; optimizer::AbstractString="sgd", lr=0.05, momentum=0.9,
                    weight_decay=0.0, beta1=0.9, beta2=0.999, eps=1e-8)
    params = model_params(model)
    for p in params
        p.opt = make_optimizer(optimizer; lr=lr, momentum=momentum, beta1=beta1, beta2=beta2,
                               eps=eps)
    end
    # In the arrays' element type: Float32(5e-4) differs from 5e-4 in the 9th digit, which a
    # Float64 parity trajectory would see.
    return TrainState(model, params, eltype(atype)(weight_decay), atype)
end

"""Mean cross-entropy of a batch: Knet's `nll` on (classes, N) scores, 1-based labels."""
batch_loss(model, x, labels; update_stats::Bool=false) =
    nll(model(x; training=true, update_stats=update_stats), labels)

"""The gradient used for the update: AutoGrad's (made dense), plus L2 weight decay."""
function decayed_gradient(g, p::Param, weight_decay::AbstractFloat)
    g = AutoGrad.full(g)
    return weight_decay == 0 ? g : g .+ weight_decay .* value(p)
end

"""Data put on the device for another element type than the state's would silently mix
precisions on the CPU and fail inside cuDNN on the GPU (its kernels need one type): refuse it."""
function check_element_type(state::TrainState, data::DeviceData)
    T, D = element_type(state), eltype(data.images)
    T == D || error("the data is $D but the model computes in $T: call put_data with the " *
                    "array type of the state (put_data after init_state)")
    return nothing
end

"""
    train_step!(state, data, order, step, batch_size) -> (state, loss::T)

One optimizer step on the samples at positions order[step*batch_size+1 : (step+1)*batch_size]
(`step` 0-based, as pybench counts). BatchNorm running statistics move during the forward pass,
as in PyTorch. The loss is the batch's mean cross-entropy before the update; Knet's `nll`
already brings it to the host, so on the GPU this step is synchronous.
"""
function train_step!(state::TrainState, data::DeviceData, order::AbstractVector{Int},
                     step::Integer, batch_size::Integer)
    check_element_type(state, data)
    x, labels = select_batch(data, batch_positions(order, step, batch_size))
    tape = @diff batch_loss(state.model, x, labels; update_stats=true)
    for p in state.params
        g = grad(tape, p)
        g === nothing && continue  # AutoGrad returns nothing for a parameter the loss ignores
        update!(p, decayed_gradient(g, p, state.weight_decay))
    end
    return state, element_type(state)(value(tape))
end

"""
    forward(state, images; training) -> Array{T} (classes, N)

Scores for one batch (W, H, C, N) in training mode (batch statistics) or eval mode, changing
nothing in `state`: running statistics are only updated by `train_step!`. The images are
converted to the state's element type `T`, and so are the scores.
"""
function forward(state::TrainState, images; training::Bool)
    x = to_device(images, state.atype)
    return Array{element_type(state)}(state.model(x; training=training, update_stats=false))
end

"""
    predict(state, data, batch_size) -> Array{T} (classes, N)

Eval-mode scores for every sample of `data`, in order, computed batch by batch.
"""
function predict(state::TrainState, data::DeviceData, batch_size::Integer)
    check_element_type(state, data)
    n = size(data.images, 4)
    T = element_type(state)
    chunks = [Array{T}(state.model(data.images[:, :, :, i:min(i + batch_size - 1, n)];
                                   training=false))
              for i in 1:batch_size:n]
    return reduce(hcat, chunks)
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
