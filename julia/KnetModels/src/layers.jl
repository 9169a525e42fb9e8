# Layers as callable structs holding Knet `Param`s, built from Knet-layout weights, exported back.
#
# Every layer reproduces PyTorch's computation exactly (pybench's fidelity rule):
# - Conv calls `conv4(...; mode=1)`: Knet's default mode=0 is true convolution (kernel flipped),
#   PyTorch computes cross-correlation, which is cuDNN/NNlib mode 1.
# - BatchNorm normalises with Knet's `batchnorm` (biased batch variance, like PyTorch) but updates
#   the running statistics itself: Knet 1.4.10's CPU batchnorm (`_update_moments!` in
#   src/ops20/batchnorm.jl) moves the running variance towards the *biased* batch variance,
#   while its GPU path hands the update to cuDNN; PyTorch uses the *unbiased* one. Doing the
#   update here gives PyTorch's rule on both devices.

"""
A layer's weight: a `Param` when it trains, the bare device array when `--trainable` freezes it.
AutoGrad records nothing for a bare array, so no gradient is computed for it, and the training
state holds no optimizer memory for it (`model_params` collects `Param`s only).
"""
const Weight = Union{Param,AbstractArray}

"""Weight `name` from a dict of arrays on arrays of type `atype` (element type
`eltype(atype)`), reshaped to `dims`: a `Param`, or the bare array when `name` is in `frozen`."""
function param_from(weights::AbstractDict, name::AbstractString, atype::Type, dims...;
                    frozen=())
    haskey(weights, name) || error("missing weight $name")
    w = to_device(weights[name], atype)
    w = isempty(dims) ? w : reshape(w, dims...)
    return name in frozen ? w : Param(w)
end

"""A device array (no gradient) from a dict, reshaped to `dims`."""
buffer_from(buffers::AbstractDict, name::AbstractString, atype::Type, dims...) =
    reshape(to_device(buffers[name], atype), dims...)

"""Host copy of a parameter or array, in its own element type, as a Vector when `flat`."""
host(x; flat::Bool=false) = (v = value(x); a = Array{eltype(v)}(v); flat ? vec(a) : a)

# --- Convolution -----------------------------------------------------------------------------

"""2-d convolution, PyTorch semantics: weight (kW, kH, Cin, Cout), optional bias (1, 1, Cout, 1)."""
struct Conv
    w::Weight
    b::Union{Weight,Nothing}
    stride::Int
    padding::Int
end

function Conv(weights::AbstractDict, name::AbstractString, atype::Type; stride=1, padding=0,
              frozen=())
    w = param_from(weights, "$name.weight", atype; frozen=frozen)
    bias = "$name.bias"
    b = haskey(weights, bias) ?
        param_from(weights, bias, atype, 1, 1, size(w, 4), 1; frozen=frozen) : nothing
    return Conv(w, b, stride, padding)
end

function (c::Conv)(x)
    y = conv4(c.w, x; padding=c.padding, stride=c.stride, mode=1)  # mode=1: cross-correlation
    return c.b === nothing ? y : y .+ c.b
end

function export_into!(out, c::Conv, name)
    out["$name.weight"] = host(c.w)
    c.b === nothing || (out["$name.bias"] = host(c.b; flat=true))
    return out
end

# --- Dense -----------------------------------------------------------------------------------

"""Fully connected layer: weight (out, in) as in PyTorch, bias (out,); input flattened by `mat`
(column-major over (W, H, C), the same order as torch's `flatten(1)` over (C, H, W))."""
struct Dense
    w::Weight
    b::Weight
end

Dense(weights::AbstractDict, name::AbstractString, atype::Type; frozen=()) =
    Dense(param_from(weights, "$name.weight", atype; frozen=frozen),
          param_from(weights, "$name.bias", atype; frozen=frozen))

(d::Dense)(x) = d.w * mat(x) .+ d.b

function export_into!(out, d::Dense, name)
    out["$name.weight"] = host(d.w)
    out["$name.bias"] = host(d.b; flat=true)
    return out
end

# --- BatchNorm -------------------------------------------------------------------------------

"""BatchNorm2d with PyTorch semantics. `params` is Knet's `[gamma; beta]` vector; the running
statistics are (1, 1, C, 1) device arrays updated in place by training steps. `momentum` and
`eps` are held in the element type `T` of the arrays (Float32 or Float64), so a Float64 model
uses exactly 0.1 and 1e-5. A `frozen` layer (`--trainable` trains neither its weight nor its bias)
normalises with its running statistics in training too and never moves them, as torchvision users
freeze layers with `eval()`."""
struct BatchNorm{T<:AbstractFloat,A}
    params::Weight
    mean::A
    var::A
    momentum::T
    eps::T
    frozen::Bool
end

function BatchNorm(weights::AbstractDict, buffers::AbstractDict, name::AbstractString,
                   atype::Type; momentum=0.1, eps=1e-5, frozen=())
    T = eltype(atype)
    gamma_beta = vcat(Array{T}(weights["$name.weight"]), Array{T}(weights["$name.bias"]))
    c = length(gamma_beta) ÷ 2
    mean = buffer_from(buffers, "$name.running_mean", atype, 1, 1, c, 1)
    var = buffer_from(buffers, "$name.running_var", atype, 1, 1, c, 1)
    # Knet keeps gamma and beta in one vector: the layer trains both or neither.
    is_frozen = "$name.weight" in frozen && "$name.bias" in frozen
    ("$name.weight" in frozen) == ("$name.bias" in frozen) ||
        error("$name: freeze its weight and bias together")
    gb = convert(atype, gamma_beta)
    return BatchNorm(is_frozen ? gb : Param(gb), mean, var, T(momentum), T(eps), is_frozen)
end

"""
    (bn::BatchNorm)(x; training, update_stats=false)

Training mode normalises with batch statistics; `update_stats=true` (only in a training step)
also moves the running statistics, PyTorch's way. Eval mode uses the running statistics.
"""
function (bn::BatchNorm)(x; training::Bool, update_stats::Bool=false)
    if training && !bn.frozen
        update_stats && update_running_stats!(bn, value(x))
        # moments=nothing: Knet must not touch running statistics (see the note at the top).
        return batchnorm(x, nothing, bn.params; training=true, eps=bn.eps)
    end
    moments = bnmoments(momentum=bn.momentum, mean=bn.mean, var=bn.var)
    return batchnorm(x, moments, bn.params; training=false, eps=bn.eps)
end

"""PyTorch's update: running = (1 - m) running + m batch, with the unbiased batch variance."""
function update_running_stats!(bn::BatchNorm, x)
    dims = (1, 2, 4)
    n = length(x) ÷ size(x, 3)
    batch_mean = sum(x; dims=dims) ./ n
    centered = x .- batch_mean
    batch_var = sum(centered .* centered; dims=dims) ./ (n - 1)
    m = bn.momentum
    bn.mean .= (1 - m) .* bn.mean .+ m .* batch_mean
    bn.var .= (1 - m) .* bn.var .+ m .* batch_var
    return bn
end

function export_into!(out, bn::BatchNorm, name)
    gamma_beta = host(bn.params; flat=true)
    c = length(gamma_beta) ÷ 2
    out["$name.weight"] = gamma_beta[1:c]
    out["$name.bias"] = gamma_beta[c+1:end]
    return out
end

function export_buffers_into!(out, bn::BatchNorm, name)
    out["$name.running_mean"] = host(bn.mean; flat=true)
    out["$name.running_var"] = host(bn.var; flat=true)
    return out
end

# --- Pooling ---------------------------------------------------------------------------------

"""2x2 max pooling, stride 2 (PyTorch's max_pool2d(x, 2); odd edges dropped as both do)."""
maxpool2(x) = pool(x; window=2, mode=0)

"""Global average pooling over the spatial dims, (W, H, C, N) -> (1, 1, C, N)."""
global_avgpool(x) = pool(x; window=(size(x, 1), size(x, 2)), mode=1)
