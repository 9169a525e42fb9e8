# A CNN file's layers (pybench/models/cnn.py), built from the op list pybench sends: conv,
# batchnorm and dense layers under their own names, and relu, max/average pools, the global
# average pool, flatten and dropout between them, applied in the file's order.

struct ReluOp end
"""PyTorch's MaxPool2d (mode 0, padding never wins) or AvgPool2d (mode 1, the padding counted
as zeros in the mean, count_include_pad)."""
struct PoolOp
    mode::Int
    window::Int
    stride::Int
    padding::Int
end
struct GlobalAvgPoolOp end
struct FlattenOp end
"""Dropout with pybench's hashed masks (pybench/models/dropout.py): `index` among the model's
dropouts, keep when the hash's top 24 bits reach `threshold`, kept elements times 1 / (1 - p)."""
struct DropoutOp
    index::Int
    p::Float64
    threshold::Int
end

struct CNN
    ops::Vector{Any}
    names::Vector{String}  # the parametrised layers' names, "" for the others
    # The run's step count, set by `train_step!` before its forward pass: which dropout masks.
    step::Base.RefValue{Int}
end

"""
    CNN(weights, buffers, ops, atype; frozen=(), bn...)

`ops` is pybench's op list: ';' between layers, ',' between a layer's fields ("conv,NAME,STRIDE,
PADDING", "batchnorm,NAME", "dense,NAME", "relu", "max_pool,K,S,P", "avg_pool,K,S,P",
"global_avg_pool", "flatten", "dropout,INDEX,P,THRESHOLD").
"""
function CNN(weights::AbstractDict, buffers::AbstractDict, ops::AbstractString, atype::Type;
             frozen=(), bn...)
    layers, names = Any[], String[]
    for spec in split(ops, ";")
        f = split(spec, ",")
        kind, name = f[1], length(f) > 1 ? String(f[2]) : ""
        if kind == "conv"
            push!(layers, Conv(weights, name, atype; stride=parse(Int, f[3]),
                               padding=parse(Int, f[4]), frozen=frozen))
        elseif kind == "batchnorm"
            push!(layers, BatchNorm(weights, buffers, name, atype; frozen=frozen, bn...))
        elseif kind == "dense"
            push!(layers, Dense(weights, name, atype; frozen=frozen))
        elseif kind == "relu"
            push!(layers, ReluOp()); name = ""
        elseif kind in ("max_pool", "avg_pool")
            push!(layers, PoolOp(kind == "max_pool" ? 0 : 1, parse.(Int, f[2:4])...)); name = ""
        elseif kind == "global_avg_pool"
            push!(layers, GlobalAvgPoolOp())
        elseif kind == "flatten"
            push!(layers, FlattenOp())
        elseif kind == "dropout"
            push!(layers, DropoutOp(parse(Int, f[2]), parse(Float64, f[3]), parse(Int, f[4])))
            name = ""
        else
            error("unknown CNN op $kind")
        end
        push!(names, name)
    end
    return CNN(layers, names, Ref(0))
end

apply_op(op::Conv, x, mode, step) = op(x)
apply_op(op::Dense, x, mode, step) = op(x)
apply_op(op::BatchNorm, x, mode, step) = op(x; mode...)
apply_op(::ReluOp, x, mode, step) = relu.(x)
apply_op(op::PoolOp, x, mode, step) =
    pool(x; window=op.window, stride=op.stride, padding=op.padding, mode=op.mode)
apply_op(::GlobalAvgPoolOp, x, mode, step) = mat(global_avgpool(x))
apply_op(::FlattenOp, x, mode, step) = mat(x)
apply_op(op::DropoutOp, x, mode, step) =
    mode.training ? x .* dropout_scale(op, size(x), step, typeof(value(x))) : x

const K_INDEX, K_STEP, K_LAYER = 0x9e3779b1, 0x85ebca77, 0xc2b2ae3d
const K_MIX1, K_MIX2 = 0x85ebca6b, 0xc2b2ae35

"""0 where `op` drops an element at `step`, 1 / (1 - p) elsewhere, as an array of type `A` of
size `dims` ((W, H, C, N) maps or (F, N) features): each element hashed from its position in
the canonical (N, C, H, W) or (N, F) batch, in UInt32 arithmetic (which wraps, as pybench's
reference does)."""
function dropout_scale(op::DropoutOp, dims::Tuple, step::Integer, A::Type)
    T = eltype(A)
    index = if length(dims) == 4
        W, H, C, N = dims
        [UInt32(((n * C + c) * H + h) * W + w) for w in 0:W-1, h in 0:H-1, c in 0:C-1, n in 0:N-1]
    else
        F, N = dims
        [UInt32(n * F + f) for f in 0:F-1, n in 0:N-1]
    end
    base = UInt32(step) * K_STEP + UInt32(op.index + 1) * K_LAYER
    h = index .* K_INDEX .+ base
    h = h .⊻ (h .>> 16)
    h = h .* K_MIX1
    h = h .⊻ (h .>> 13)
    h = h .* K_MIX2
    h = h .⊻ (h .>> 16)
    scale = T(1 / (1 - op.p))
    return convert(A, ifelse.((h .>> 8) .>= UInt32(op.threshold), scale, zero(T)))
end

function run_ops(m::CNN, ops, x; training::Bool, update_stats::Bool)
    mode = (training=training, update_stats=update_stats)
    for op in ops
        x = apply_op(op, x, mode, m.step[])
    end
    return x
end

"""What the last dense layer sees."""
features(m::CNN, x; training::Bool=false, update_stats::Bool=false) =
    run_ops(m, m.ops[1:end-1], x; training=training, update_stats=update_stats)

(m::CNN)(x; training::Bool=false, update_stats::Bool=false) =
    run_ops(m, m.ops, x; training=training, update_stats=update_stats)

named_layers(m::CNN) = [name => op for (name, op) in zip(m.names, m.ops) if !isempty(name)]

"""Tell a model the run's step count before a training step (only dropout reads it)."""
set_step!(m::CNN, step::Integer) = (m.step[] = step; m)
set_step!(m, step::Integer) = m
