# ResNets (CIFAR ResNet-8/20, ResNet-18 with a small-input stem), as pybench.models describes
# them: stem conv3x3 (stride 1, padding 1, no bias) - bn - relu; basic blocks; global average
# pool; fc. Block prefixes and downsample shortcuts follow torchvision's names.

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

function BasicBlock(weights, buffers, spec::BlockSpec, atype::Type; bn...)
    p = spec.prefix
    downsample = haskey(weights, "$p.downsample.0.weight") ?
        (Conv(weights, "$p.downsample.0", atype; stride=spec.stride),
         BatchNorm(weights, buffers, "$p.downsample.1", atype; bn...)) : nothing
    return BasicBlock(p,
        Conv(weights, "$p.conv1", atype; stride=spec.stride, padding=1),
        BatchNorm(weights, buffers, "$p.bn1", atype; bn...),
        Conv(weights, "$p.conv2", atype; padding=1),
        BatchNorm(weights, buffers, "$p.bn2", atype; bn...),
        downsample)
end

function (b::BasicBlock)(x; training::Bool, update_stats::Bool=false)
    mode = (training=training, update_stats=update_stats)
    y = relu.(b.bn1(b.conv1(x); mode...))
    y = b.bn2(b.conv2(y); mode...)
    shortcut = b.downsample === nothing ? x : b.downsample[2](b.downsample[1](x); mode...)
    return relu.(y .+ shortcut)
end

function named_layers(b::BasicBlock)
    p = b.prefix
    layers = ["$p.conv1" => b.conv1, "$p.bn1" => b.bn1, "$p.conv2" => b.conv2, "$p.bn2" => b.bn2]
    if b.downsample !== nothing
        push!(layers, "$p.downsample.0" => b.downsample[1], "$p.downsample.1" => b.downsample[2])
    end
    return layers
end

"""A ResNet with canonical names: conv1, bn1, layer{s}.{j}.*, fc."""
struct ResNet
    conv1::Conv
    bn1::BatchNorm
    blocks::Vector{BasicBlock}
    fc::Dense
end

"""Build a ResNet from Knet-layout weights and BatchNorm buffers; `strides` per block in order."""
function ResNet(weights::AbstractDict, buffers::AbstractDict, strides::AbstractVector{<:Integer},
                atype::Type; bn...)
    blocks = [BasicBlock(weights, buffers, spec, atype; bn...)
              for spec in block_specs(weights, strides)]
    return ResNet(Conv(weights, "conv1", atype; padding=1),
                  BatchNorm(weights, buffers, "bn1", atype; bn...),
                  blocks, Dense(weights, "fc", atype))
end

"""Scores (classes, N) for images (W, H, C, N)."""
function (m::ResNet)(x; training::Bool=false, update_stats::Bool=false)
    x = relu.(m.bn1(m.conv1(x); training=training, update_stats=update_stats))
    for block in m.blocks
        x = block(x; training=training, update_stats=update_stats)
    end
    return m.fc(global_avgpool(x))
end

named_layers(m::ResNet) = vcat(["conv1" => m.conv1, "bn1" => m.bn1],
                               [named_layers(b) for b in m.blocks]..., ["fc" => m.fc])
