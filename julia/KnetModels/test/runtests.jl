# KnetModels tests: shapes, one training step, weight round trip, BatchNorm's running statistics,
# the Float64 path (pybench's parity trajectory; also on the GPU when CUDA.functional()), and,
# when ENV["KNETMODELS_PARITY_NPZ"] names a file, parity with PyTorch (test/parity.jl says what the
# file holds and what is checked: shapes, counts, float32 logits, float64 SGD and Adam
# trajectories with BatchNorm statistics, and that every check can fail).
#
# pybench's tests/test_knet_julia.py writes that file and runs this script; by hand:
#   KNETMODELS_PARITY_NPZ=parity.npz julia --project=julia/KnetModels -e 'using Pkg; Pkg.test()'
# or, in an environment that already has KnetModels, Knet, CUDA, NPZ, Test and Random:
#   KNETMODELS_PARITY_NPZ=parity.npz julia --project=ENV julia/KnetModels/test/runtests.jl

using Test
using Random
using Knet
using CUDA
using KnetModels
using NPZ

include("parity.jl")

const ATYPE = Array{Float32}  # the CPU path: what every machine can run

"""LeNet-5's op list as pybench sends it (pybench.models.describe: a plain CNN's `ops`)."""
const LENET5_OPS = "conv,conv1,1,2;relu;max_pool,2,2,0;conv,conv2,1,0;relu;max_pool,2,2,0;flatten;dense,fc1;" *
                   "relu;dense,fc2;relu;dense,fc3"

"""Knet-layout parameter shapes of LeNet-5 for `c`-channel 28x28 images."""
lenet5_shapes(c, classes) = Dict(
    "conv1.weight" => (5, 5, c, 6), "conv1.bias" => (6,),
    "conv2.weight" => (5, 5, 6, 16), "conv2.bias" => (16,),
    "fc1.weight" => (120, 16 * 5 * 5), "fc1.bias" => (120,),
    "fc2.weight" => (84, 120), "fc2.bias" => (84,),
    "fc3.weight" => (classes, 84), "fc3.bias" => (classes,))

"""Knet-layout parameter shapes of CIFAR ResNet-8 (16/32/64 channels, one block per stage)."""
function resnet8_shapes(c, classes)
    shapes = Dict{String,Tuple}("conv1.weight" => (3, 3, c, 16), "fc.weight" => (classes, 64),
                                "fc.bias" => (classes,))
    bn!(name, ch) = (shapes["$name.weight"] = (ch,); shapes["$name.bias"] = (ch,))
    bn!("bn1", 16)
    for (s, (cin, cout)) in enumerate([(16, 16), (16, 32), (32, 64)])
        p = "layer$s.0"
        shapes["$p.conv1.weight"] = (3, 3, cin, cout); bn!("$p.bn1", cout)
        shapes["$p.conv2.weight"] = (3, 3, cout, cout); bn!("$p.bn2", cout)
        if cin != cout
            shapes["$p.downsample.0.weight"] = (1, 1, cin, cout); bn!("$p.downsample.1", cout)
        end
    end
    return shapes
end
const RESNET8_STRIDES = [1, 2, 2]

"""Small random weights (BatchNorm weight 1, bias 0) and fresh running statistics."""
function random_weights(shapes; seed=1)
    rng = MersenneTwister(seed)
    weights = Dict{String,Array{Float32}}()
    buffers = Dict{String,Array{Float32}}()
    for (name, shape) in shapes
        isbn = length(shape) == 1 && occursin(r"(bn\d|downsample\.1)\.", name)
        if isbn
            weights[name] = endswith(name, "weight") ? ones(Float32, shape) : zeros(Float32, shape)
            stem = replace(name, r"\.(weight|bias)$" => "")
            buffers["$stem.running_mean"] = zeros(Float32, shape)
            buffers["$stem.running_var"] = ones(Float32, shape)
        else
            fan_in = length(shape) == 4 ? prod(shape[1:3]) : (length(shape) == 2 ? shape[2] : 16)
            weights[name] = (rand(rng, Float32, shape...) .- 0.5f0) .* (2 / sqrt(Float32(fan_in)))
        end
    end
    return weights, buffers
end

"""Float64 copies of a dict of weights, as pybench's parity trajectory passes them."""
to_float64(arrays) = Dict{String,Array{Float64}}(k => Float64.(v) for (k, v) in arrays)

function batch(c, n; seed=2, classes=10)
    rng = MersenneTwister(seed)
    return randn(rng, Float32, 28, 28, c, n), rand(rng, 1:classes, n)
end

# (name, weights, buffers, block strides, channels, build_model's family keywords)
models_under_test() = [
    ("lenet5", random_weights(lenet5_shapes(1, 10))..., Int[], 1, (family="cnn", ops=LENET5_OPS)),
    ("resnet8", random_weights(resnet8_shapes(3, 10))..., RESNET8_STRIDES, 3, (family="resnet",)),
]

@testset "KnetModels" begin
    @testset "forward shapes: $(case[1])" for case in models_under_test()
        kind, w, b, strides, c, how = case
        model = build_model(kind, w, b, strides, ATYPE; how...)
        x, _ = batch(c, 4)
        @test size(model(x; training=false)) == (10, 4)
        @test size(model(x; training=true)) == (10, 4)
    end

    @testset "one step lowers the loss on a fixed batch: $(case[1])" for case in models_under_test()
        kind, w, b, strides, c, how = case
        state = init_state(build_model(kind, w, b, strides, ATYPE; how...), ATYPE; optimizer="sgd",
                           lr=0.01, momentum=0.9)
        x, y = batch(c, 16)
        data = put_data(x, y, ATYPE)
        before = batch_loss(state.model, x, y)
        _, loss = train_step!(state, data, put_order(1:16), 0, 16)
        @test loss ≈ before rtol=1e-5  # the loss reported is the one before the update
        @test batch_loss(state.model, x, y) < before
    end

    @testset "adam step and weight decay run: $(case[1])" for case in models_under_test()
        kind, w, b, strides, c, how = case
        state = init_state(build_model(kind, w, b, strides, ATYPE; how...), ATYPE; optimizer="adam",
                           lr=1e-3, weight_decay=5e-4)
        x, y = batch(c, 8)
        _, loss = train_step!(state, put_data(x, y, ATYPE), put_order(8:-1:1), 0, 8)
        @test isfinite(loss)
    end

    @testset "export returns the weights it was built from: $(case[1])" for case in models_under_test()
        kind, w, b, strides, c, how = case
        params, buffers = export_weights(init_state(build_model(kind, w, b, strides, ATYPE; how...), ATYPE))
        @test Set(keys(params)) == Set(keys(w))
        @test all(params[k] == reshape(w[k], size(params[k])) for k in keys(w))
        @test all(buffers[k] == b[k] for k in keys(b))
    end

    @testset "forward leaves state alone; a step moves running stats PyTorch's way" begin
        w, b = random_weights(resnet8_shapes(3, 10))
        state = init_state(build_model("resnet8", w, b, RESNET8_STRIDES, ATYPE), ATYPE; lr=0.0)
        x, y = batch(3, 8)
        forward(state, x; training=true)
        @test export_weights(state)[2]["bn1.running_var"] == ones(Float32, 16)
        train_step!(state, put_data(x, y, ATYPE), put_order(1:8), 0, 8)
        z = conv4(w["conv1.weight"], x; padding=1, mode=1)
        n = length(z) ÷ 16
        mu = sum(z; dims=(1, 2, 4)) ./ n
        unbiased = vec(sum((z .- mu) .^ 2; dims=(1, 2, 4)) ./ (n - 1))
        got = export_weights(state)[2]
        @test got["bn1.running_var"] ≈ 0.9f0 .+ 0.1f0 .* unbiased rtol=1e-4
        @test got["bn1.running_mean"] ≈ 0.1f0 .* vec(mu) rtol=1e-4 atol=1e-6
    end

    @testset "array types follow the element type" begin
        @test array_type("cpu") == Array{Float32}
        @test array_type("cpu", Float64) == Array{Float64}
        @test array_type("cpu", "float64") == Array{Float64}
        @test array_type("cpu", "float32") == Array{Float32}
        @test_throws ErrorException array_type("cpu", "float16")
    end

    @testset "Float64 forward and step: $(case[1])" for case in models_under_test()
        kind, w, b, strides, c, how = case
        atype = array_type("cpu", Float64)
        state = init_state(build_model(kind, to_float64(w), to_float64(b), strides, atype; how...), atype;
                           optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4)
        @test state.rule.weight_decay === 5e-4  # not Float32(5e-4)
        x, y = batch(c, 16)
        scores = forward(state, x; training=false)  # Float32 images are converted
        @test eltype(scores) == Float64 && size(scores) == (10, 16)
        state32 = init_state(build_model(kind, w, b, strides, ATYPE; how...), ATYPE)
        scores32 = forward(state32, x; training=true)
        @test eltype(scores32) == Float32
        @test scores32 ≈ forward(state, x; training=true) rtol=1e-4
        data = put_data(x, y, atype)
        @test eltype(data.images) == Float64 && KnetModels.on_device(data)
        before = batch_loss(state.model, data.images, y)
        _, loss = train_step!(state, data, put_order(1:16), 0, 16)
        @test loss isa Float64
        @test loss ≈ before rtol=1e-10
        @test batch_loss(state.model, data.images, y) < before
        params, buffers = export_weights(state)
        @test all(v isa Array{Float64} for v in values(params))
        @test all(v isa Array{Float64} for v in values(buffers))
        @test eltype(predict(state, data, 5)) == Float64 && size(predict(state, data, 5)) == (10, 16)
        # Data in another element type than the state's is refused, not silently mixed.
        @test_throws ErrorException train_step!(state, put_data(x, y, ATYPE), put_order(1:16), 0, 16)
    end

    @testset "Float64 on the GPU matches the CPU: $(case[1])" for case in models_under_test()
        if CUDA.functional()
            kind, w, b, strides, c, how = case
            x, y = batch(c, 16)
            run_on(atype) = begin
                state = init_state(build_model(kind, to_float64(w), to_float64(b), strides, atype; how...),
                                   atype; optimizer="sgd", lr=0.01, momentum=0.9)
                eval0 = forward(state, x; training=false)
                # The order on the device too, as pybench puts it (put_order's atype).
                _, loss = train_step!(state, put_data(x, y, atype), put_order(1:16, nothing, atype),
                                      0, 16)
                synchronize_device(atype)
                (eval0, loss, export_weights(state)...)
            end
            cpu_eval, cpu_loss, cpu_params, cpu_buffers = run_on(array_type("cpu", Float64))
            gpu_eval, gpu_loss, gpu_params, gpu_buffers = run_on(array_type("cuda", Float64))
            @test eltype(gpu_eval) == Float64 && gpu_loss isa Float64
            @test gpu_eval ≈ cpu_eval rtol=1e-9
            @test gpu_loss ≈ cpu_loss rtol=1e-9
            @test all(gpu_params[k] ≈ cpu_params[k] for k in keys(cpu_params))
            @test all(gpu_buffers[k] ≈ cpu_buffers[k] for k in keys(cpu_buffers))
        else
            @info "GPU Float64 testset skipped: CUDA.functional() is false"
        end
    end

    @testset "the loss is Knet's nll, through a one-hot mask where the labels live" begin
        for T in (Float32, Float64)
            scores = randn(MersenneTwister(3), T, 10, 32)
            labels = rand(MersenneTwister(4), 1:10, 32)
            ours = KnetModels.mean_nll(logsoftmax(scores; dims=1), labels)
            @test ours isa T
            @test ours ≈ nll(scores, labels) rtol=(T == Float32 ? 1e-6 : 1e-14)
        end
    end

    @testset "batches are picked where the data lives; device memory only on a GPU" begin
        @test KnetModels.index_type(ATYPE) == Array{Int}
        x, y = batch(1, 8)
        data = put_data(x, y, ATYPE)
        plan = put_order(8:-1:1, nothing, ATYPE)
        @test data.labels isa Vector{Int} && plan.order isa Vector{Int}
        images, labels = KnetModels.select_batch(data, KnetModels.batch_positions(plan.order, 1, 4))
        @test labels == y[4:-1:1] && images == x[:, :, :, 4:-1:1]
        w, b = random_weights(lenet5_shapes(1, 10))
        state = init_state(build_model("lenet5", w, b, Int[], ATYPE; family="cnn", ops=LENET5_OPS), ATYPE; lr=0.01)
        train_step!(state, data, plan, 0, 8)
        @test device_memory_peak() == 0  # nothing is sampled on the CPU
        if CUDA.functional()
            gpu = array_type("cuda", Float32)
            @test KnetModels.index_type(gpu) == CuArray{Int}
            gdata = put_data(x, y, gpu)
            @test gdata.labels isa CuArray{Int} && put_order(1:8, nothing, gpu).order isa CuArray{Int}
            gstate = init_state(build_model("lenet5", w, b, Int[], gpu; family="cnn", ops=LENET5_OPS), gpu; lr=0.01)
            train_step!(gstate, gdata, put_order(1:8, nothing, gpu), 0, 8)
            @test device_memory_peak() > 0
        end
    end

    @testset "the GPU probe asks CUDA only as far as it may" begin
        probe = gpu_probe("8.9")
        @test probe["functional"] == CUDA.functional()
        if CUDA.functional()
            @test haskey(probe, "name") && occursin(r"^\d+\.\d+$", probe["capability"])
            # a capability above the ceiling gets no smoke test (it would crash, not fail)
            @test !haskey(gpu_probe("0.1"), "smoke")
        else
            @test keys(probe) == Set(["functional"])  # nothing else touched CUDA
        end
    end

    @testset "parity with PyTorch logits" begin
        path = get(ENV, "KNETMODELS_PARITY_NPZ", "")
        if isempty(path)
            @info "parity testset skipped: set KNETMODELS_PARITY_NPZ to an .npz written by " *
                  "pybench's tests/test_knet_julia.py"
        else
            run_parity(path)
            run_parity_can_fail(path)
        end
    end
end
