"""
    KnetModels

pybench's models (plain CNNs: LeNet-5 and CNN files; the ResNets; DenseNet-121) and training step in
Knet.jl, built from
canonical PyTorch weights so that every framework starts from the same numbers. Called from
Python through juliacall (pybench/backends/knet_backend.py) or standalone (test/runtests.jl).

Weights arrive in Knet layout (pybench/backends/knet_layout.py): conv weights (kW, kH, Cin, Cout),
everything else in its canonical shape; images (W, H, C, N); labels and positions 1-based.

Element type: everything computes in the element type of the array type (`array_type(device, T)`),
which pybench takes from the canonical weights: Float32 for normal runs, Float64 for the parity
command's training trajectory. Weights, data, BatchNorm constants, weight decay, losses, scores
and exported weights all follow it.
"""
module KnetModels

using Knet
using CUDA

include("data.jl")
include("layers.jl")
include("resnets.jl")
include("densenets.jl")
include("cnn.jl")
include("training.jl")
include("versions.jl")

export array_type, to_device, synchronize_device, put_data, put_pixels, put_order
export Conv, Dense, BatchNorm, ResNet, BlockSpec, block_specs, DenseNet, CNN
export build_model, TrainState, init_state, train_step!, batch_loss, forward, predict, embed, features,
       EpochPlan
export export_weights, package_versions, gpu_probe, device_memory_peak

end # module
