# ResNets as pybench.models describes them: a stem conv (no bias) - bn - relu, then for the
# ImageNet form a max pool; residual blocks (basic, or torchvision's v1.5 bottleneck where the
# weights hold a conv3); global average pool; fc. The small-input ResNets (CIFAR ResNet-8/20,
# ResNet-18) have a 3x3 stride-1 stem and no pool; resnet18-imagenet and resnet50-imagenet
# torchvision's 7x7 stride-2 stem and 3x3 stride-2 max pool padded by 1. Block prefixes and
# downsample shortcuts follow torchvision's names.

"""One basic block's place in the network: its name prefix (e.g. "layer2.0") and stride."""
struct BlockSpec
    prefix::String
    stride::Int
end

"""
    block_specs(weights, strides) -> Vector{BlockSpec}

Block prefixes read from the weight names ("layer{s}.{j}.conv1.weight"), sorted by stage and
index, paired with `strides` (from `pybench.models.describe`, which the weights cannot tell).
"""
function block_specs(weights::AbstractDict, strides::AbstractVector{<:Integer})
    pattern = r"^layer(\d+)\.(\d+)\.conv1\.weight$"
    found = [match(pattern, String(k)) for k in keys(weights)]
    keys_ = sort([(parse(Int, m[1]), parse(Int, m[2])) for m in found if m !== nothing])
    length(keys_) == length(strides) ||
        error("$(length(keys_)) residual blocks in the weights but $(length(strides)) strides")
    return [BlockSpec("layer$s.$j", stride) for ((s, j), stride) in zip(keys_, strides)]
end

"""conv-bn-relu-conv-bn plus the shortcut (identity, or 1x1 conv + bn where the shape changes)."""
struct BasicBlock
    prefix::String
    conv1::Conv
    bn1::BatchNorm
    conv2::Conv
    bn2::BatchNorm
    downsample::Union{Tuple{Conv,BatchNorm},Nothing}
end

function BasicBlock(weights, buffers, spec::BlockSpec, atype::Type; frozen=(), bn...)
    p = spec.prefix
    return BasicBlock(p,
        Conv(weights, "$p.conv1", atype; stride=spec.stride, padding=1, frozen=frozen),
        BatchNorm(weights, buffers, "$p.bn1", atype; frozen=frozen, bn...),
        Conv(weights, "$p.conv2", atype; padding=1, frozen=frozen),
        BatchNorm(weights, buffers, "$p.bn2", atype; frozen=frozen, bn...),
        downsample(weights, buffers, spec, atype; frozen=frozen, bn...))
end

"""The projection shortcut (1x1 conv + bn) where the weights hold one, else `nothing`."""
function downsample(weights, buffers, spec::BlockSpec, atype::Type; frozen=(), bn...)
    p = spec.prefix
    haskey(weights, "$p.downsample.0.weight") || return nothing
    return (Conv(weights, "$p.downsample.0", atype; stride=spec.stride, frozen=frozen),
            BatchNorm(weights, buffers, "$p.downsample.1", atype; frozen=frozen, bn...))
end

function (b::BasicBlock)(x; training::Bool, update_stats::Bool=false)
    mode = (training=training, update_stats=update_stats)
    y = relu.(b.bn1(b.conv1(x); mode...))
    y = b.bn2(b.conv2(y); mode...)
    shortcut = b.downsample === nothing ? x : b.downsample[2](b.downsample[1](x); mode...)
    return relu.(y .+ shortcut)
end

"""torchvision's Bottleneck (v1.5): conv1x1-bn-relu-conv3x3(stride)-bn-relu-conv1x1-bn plus the
shortcut, then relu."""
struct Bottleneck
    prefix::String
    conv1::Conv
    bn1::BatchNorm
    conv2::Conv
    bn2::BatchNorm
    conv3::Conv
    bn3::BatchNorm
    downsample::Union{Tuple{Conv,BatchNorm},Nothing}
end

function Bottleneck(weights, buffers, spec::BlockSpec, atype::Type; frozen=(), bn...)
    p = spec.prefix
    return Bottleneck(p,
        Conv(weights, "$p.conv1", atype; frozen=frozen),
        BatchNorm(weights, buffers, "$p.bn1", atype; frozen=frozen, bn...),
        Conv(weights, "$p.conv2", atype; stride=spec.stride, padding=1, frozen=frozen),
        BatchNorm(weights, buffers, "$p.bn2", atype; frozen=frozen, bn...),
        Conv(weights, "$p.conv3", atype; frozen=frozen),
        BatchNorm(weights, buffers, "$p.bn3", atype; frozen=frozen, bn...),
        downsample(weights, buffers, spec, atype; frozen=frozen, bn...))
end

function (b::Bottleneck)(x; training::Bool, update_stats::Bool=false)
    mode = (training=training, update_stats=update_stats)
    y = relu.(b.bn1(b.conv1(x); mode...))
    y = relu.(b.bn2(b.conv2(y); mode...))
    y = b.bn3(b.conv3(y); mode...)
    shortcut = b.downsample === nothing ? x : b.downsample[2](b.downsample[1](x); mode...)
    return relu.(y .+ shortcut)
end

"""A basic block, or a bottleneck where the weights hold the block's conv3."""
residual_block(weights, buffers, spec::BlockSpec, atype::Type; bn...) =
    haskey(weights, "$(spec.prefix).conv3.weight") ?
        Bottleneck(weights, buffers, spec, atype; bn...) :
        BasicBlock(weights, buffers, spec, atype; bn...)

function named_layers(b::Bottleneck)
    p = b.prefix
    layers = ["$p.conv1" => b.conv1, "$p.bn1" => b.bn1, "$p.conv2" => b.conv2, "$p.bn2" => b.bn2,
              "$p.conv3" => b.conv3, "$p.bn3" => b.bn3]
    if b.downsample !== nothing
        push!(layers, "$p.downsample.0" => b.downsample[1], "$p.downsample.1" => b.downsample[2])
    end
    return layers
end

function named_layers(b::BasicBlock)
    p = b.prefix
    layers = ["$p.conv1" => b.conv1, "$p.bn1" => b.bn1, "$p.conv2" => b.conv2, "$p.bn2" => b.bn2]
    if b.downsample !== nothing
        push!(layers, "$p.downsample.0" => b.downsample[1], "$p.downsample.1" => b.downsample[2])
    end
    return layers
end

"""A ResNet with canonical names: conv1, bn1, layer{s}.{j}.*, fc. `pool` is the stem's max pool
(window, stride, padding), or `nothing`."""
struct ResNet
    conv1::Conv
    bn1::BatchNorm
    pool::Union{NTuple{3,Int},Nothing}
    blocks::Vector{Union{BasicBlock,Bottleneck}}
    fc::Dense
end

"""
    ResNet(weights, buffers, strides, atype; stem_stride=1, stem_padding=1, stem_pool=Int[],
           frozen=(), bn...)

Build a ResNet from Knet-layout weights and BatchNorm buffers; `strides` per block in order. The
stem convolution's kernel comes from its weights, its stride and padding from the keywords
(the small stem's by default); `stem_pool` is the max pool (window, stride, padding) after it,
empty (or zeros) for none. `frozen`: the canonical names of the parameters that do not train.
"""
function ResNet(weights::AbstractDict, buffers::AbstractDict, strides::AbstractVector{<:Integer},
                atype::Type; stem_stride::Integer=1, stem_padding::Integer=1,
                stem_pool::AbstractVector{<:Integer}=Int[], frozen=(), bn...)
    blocks = Union{BasicBlock,Bottleneck}[
        residual_block(weights, buffers, spec, atype; frozen=frozen, bn...)
        for spec in block_specs(weights, strides)]
    pool = (isempty(stem_pool) || all(iszero, stem_pool)) ? nothing : Tuple(Int.(stem_pool))
    return ResNet(Conv(weights, "conv1", atype; stride=stem_stride, padding=stem_padding,
                       frozen=frozen),
                  BatchNorm(weights, buffers, "bn1", atype; frozen=frozen, bn...), pool,
                  blocks, Dense(weights, "fc", atype; frozen=frozen))
end

"""Penultimate features (features, N) for images (W, H, C, N): what the classifier sees."""
function features(m::ResNet, x; training::Bool=false, update_stats::Bool=false)
    x = relu.(m.bn1(m.conv1(x); training=training, update_stats=update_stats))
    if m.pool !== nothing
        window, stride, padding = m.pool
        # NNlib's (and cuDNN's) max pool skips the padding, as PyTorch's -inf padding does.
        x = pool(x; window=window, stride=stride, padding=padding, mode=0)
    end
    for block in m.blocks
        x = block(x; training=training, update_stats=update_stats)
    end
    return mat(global_avgpool(x))
end

"""Scores (classes, N) for images (W, H, C, N)."""
(m::ResNet)(x; training::Bool=false, update_stats::Bool=false) =
    m.fc(features(m, x; training=training, update_stats=update_stats))

named_layers(m::ResNet) = vcat(["conv1" => m.conv1, "bn1" => m.bn1],
                               [named_layers(b) for b in m.blocks]..., ["fc" => m.fc])
