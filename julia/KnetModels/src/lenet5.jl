# LeNet-5, as pybench.models describes it: conv 6@5x5 (padding 2) - relu - maxpool 2 -
# conv 16@5x5 - relu - maxpool 2 - flatten - fc 120 - relu - fc 84 - relu - fc classes.

"""LeNet-5 with canonical layer names (conv1, conv2, fc1, fc2, fc3)."""
struct LeNet5
    conv1::Conv
    conv2::Conv
    fc1::Dense
    fc2::Dense
    fc3::Dense
end

"""Build LeNet-5 from Knet-layout weights (see `KnetModels`) on arrays of type `atype`."""
LeNet5(weights::AbstractDict, atype::Type; conv1_padding=2, frozen=()) = LeNet5(
    Conv(weights, "conv1", atype; padding=conv1_padding, frozen=frozen),
    Conv(weights, "conv2", atype; frozen=frozen),
    Dense(weights, "fc1", atype; frozen=frozen),
    Dense(weights, "fc2", atype; frozen=frozen),
    Dense(weights, "fc3", atype; frozen=frozen),
)

"""Scores (classes, N) for images (W, H, C, N). LeNet-5 has no BatchNorm, so the mode
keywords change nothing; they keep one calling convention for every model."""
(m::LeNet5)(x; training::Bool=false, update_stats::Bool=false) = m.fc3(features(m, x))

"""Penultimate features (84, N): fc2 after its relu, what fc3 sees."""
function features(m::LeNet5, x; training::Bool=false, update_stats::Bool=false)
    x = maxpool2(relu.(m.conv1(x)))
    x = maxpool2(relu.(m.conv2(x)))
    x = relu.(m.fc1(x))
    return relu.(m.fc2(x))
end

"""(canonical name, layer) pairs, in canonical order."""
named_layers(m::LeNet5) = ["conv1" => m.conv1, "conv2" => m.conv2, "fc1" => m.fc1,
                           "fc2" => m.fc2, "fc3" => m.fc3]
