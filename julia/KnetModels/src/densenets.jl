# DenseNets as pybench.models.densenets describes them, torchvision's names: a stem
# (features.conv0 7x7 stride 2, norm0, relu, 3x3 stride-2 max pool padded by 1), dense blocks
# whose layers each see the concatenation of everything before them in the block
# (norm1-relu-conv1 1x1-norm2-relu-conv2 3x3), transitions (norm-relu-conv 1x1-2x2 average
# pool) between blocks, features.norm5, relu, global average pool, classifier.

"""One dense layer: the concatenated inputs through norm1-relu-conv1-norm2-relu-conv2."""
struct DenseLayer
    prefix::String
    norm1::BatchNorm
    conv1::Conv
    norm2::BatchNorm
    conv2::Conv
end

function DenseLayer(weights, buffers, prefix::AbstractString, atype::Type; frozen=(), bn...)
    return DenseLayer(prefix,
        BatchNorm(weights, buffers, "$prefix.norm1", atype; frozen=frozen, bn...),
        Conv(weights, "$prefix.conv1", atype; frozen=frozen),
        BatchNorm(weights, buffers, "$prefix.norm2", atype; frozen=frozen, bn...),
        Conv(weights, "$prefix.conv2", atype; padding=1, frozen=frozen))
end

function (l::DenseLayer)(inputs::AbstractVector; training::Bool, update_stats::Bool=false)
    mode = (training=training, update_stats=update_stats)
    x = cat(inputs...; dims=3)  # channels are the third dimension of (W, H, C, N)
    y = l.conv1(relu.(l.norm1(x; mode...)))
    return l.conv2(relu.(l.norm2(y; mode...)))
end

named_layers(l::DenseLayer) = ["$(l.prefix).norm1" => l.norm1, "$(l.prefix).conv1" => l.conv1,
                               "$(l.prefix).norm2" => l.norm2, "$(l.prefix).conv2" => l.conv2]

"""norm-relu-conv (1x1) then a 2x2 stride-2 average pool."""
struct Transition
    prefix::String
    norm::BatchNorm
    conv::Conv
end

(t::Transition)(x; training::Bool, update_stats::Bool=false) =
    pool(t.conv(relu.(t.norm(x; training=training, update_stats=update_stats))); window=2, mode=1)

named_layers(t::Transition) = ["$(t.prefix).norm" => t.norm, "$(t.prefix).conv" => t.conv]

struct DenseNet
    conv0::Conv
    norm0::BatchNorm
    pool::NTuple{3,Int}
    blocks::Vector{Vector{DenseLayer}}
    transitions::Vector{Transition}
    norm5::BatchNorm
    classifier::Dense
end

"""
    DenseNet(weights, buffers, block_layers, atype; stem_pool=[3, 2, 1], frozen=(), bn...)

Build a DenseNet from Knet-layout weights: `block_layers` dense layers per block (6, 12, 24, 16
for DenseNet-121), the stem's max pool (window, stride, padding).
"""
function DenseNet(weights::AbstractDict, buffers::AbstractDict,
                  block_layers::AbstractVector{<:Integer}, atype::Type;
                  stem_pool::AbstractVector{<:Integer}=[3, 2, 1], frozen=(), bn...)
    norm(name) = BatchNorm(weights, buffers, name, atype; frozen=frozen, bn...)
    blocks = [[DenseLayer(weights, buffers, "features.denseblock$i.denselayer$j", atype;
                          frozen=frozen, bn...) for j in 1:count]
              for (i, count) in enumerate(block_layers)]
    transitions = [Transition("features.transition$i", norm("features.transition$i.norm"),
                              Conv(weights, "features.transition$i.conv", atype; frozen=frozen))
                   for i in 1:length(block_layers)-1]
    return DenseNet(Conv(weights, "features.conv0", atype; stride=2, padding=3, frozen=frozen),
                    norm("features.norm0"), Tuple(Int.(stem_pool)), blocks, transitions,
                    norm("features.norm5"), Dense(weights, "classifier", atype; frozen=frozen))
end

"""Penultimate features (features, N) for images (W, H, C, N): what the classifier sees."""
function features(m::DenseNet, x; training::Bool=false, update_stats::Bool=false)
    mode = (training=training, update_stats=update_stats)
    window, stride, padding = m.pool
    x = pool(relu.(m.norm0(m.conv0(x); mode...)); window=window, stride=stride, padding=padding,
             mode=0)
    for (i, block) in enumerate(m.blocks)
        inputs = Any[x]
        for layer in block
            push!(inputs, layer(inputs; mode...))
        end
        x = cat(inputs...; dims=3)
        i <= length(m.transitions) && (x = m.transitions[i](x; mode...))
    end
    return mat(global_avgpool(relu.(m.norm5(x; mode...))))
end

(m::DenseNet)(x; training::Bool=false, update_stats::Bool=false) =
    m.classifier(features(m, x; training=training, update_stats=update_stats))

function named_layers(m::DenseNet)
    layers = Pair{String,Any}["features.conv0" => m.conv0, "features.norm0" => m.norm0]
    for (i, block) in enumerate(m.blocks)
        for layer in block
            append!(layers, named_layers(layer))
        end
        i <= length(m.transitions) && append!(layers, named_layers(m.transitions[i]))
    end
    push!(layers, "features.norm5" => m.norm5, "classifier" => m.classifier)
    return layers
end
