# Parity with PyTorch, driven from Python: pybench's tests/test_knet_julia.py writes, for each
# model, the canonical weights in Knet layout, a batch, PyTorch's float32 logits and loss, and
# PyTorch's float64 training trajectories (SGD with momentum; Adam with weight decay) on the same
# batches. Everything is rebuilt here through the same build_model / init_state / train_step!
# that the Python backend calls. Keys, for model m (every array in Knet layout):
#
#   m/param/NAME, m/buffer/NAME     float32 canonical weights and BatchNorm running statistics
#   m/shape/NAME                    PyTorch's shape of every parameter and buffer, in Knet layout
#   m/n_params                      PyTorch's trainable parameter count
#   m/block_strides                 per residual block (absent for LeNet-5: NPZ.jl cannot read a
#                                   zero-length member, so an empty array breaks the whole file)
#   m/images (W,H,C,N), m/labels (1-based), m/logits_eval, m/logits_train (classes,N), m/loss_train
#   m/traj/param/NAME, m/traj/buffer/NAME, m/traj/images, m/traj/labels, m/traj/order (1-based),
#   m/traj/batch_size, m/traj/steps     float64 start of the trajectories
#   m/traj/OPT/hyper                [lr, momentum, weight_decay, beta1, beta2, eps]
#   m/traj/OPT/losses               PyTorch's loss at every step
#   m/traj/OPT/final/param/NAME, m/traj/OPT/final/buffer/NAME   PyTorch's weights after the steps
#
# Every figure is printed, and appended to ENV["KNETMODELS_PARITY_REPORT"] when set (one line
# per check: model, check, figure, tolerance, ok) for the Python side to assert and show.

const TRAJECTORY_OPTIMIZERS = ("sgd", "adam")

# Tolerances. float32 forward: logits within 1e-4 absolute (pybench's forward check; measured
# here: at most 4.4e-6, ResNet-18 in train mode). float64 trajectories: JAX reaches 1e-11 or better
# against PyTorch; Knet's CPU conv4 (im2col + gemm) and pooling sum in another order than PyTorch,
# which costs ~1e-16 per operation in float64. Measured over ten steps (Julia 1.5.3, Knet 1.4.10,
# CPU): SGD at most 1.4e-15 relative in the loss and 6.9e-16 in the weights; Adam at most 9.8e-14
# and 1.2e-11 (ResNet-18: Adam divides by sqrt(v) + eps, which magnifies the tiny differences of
# the first steps' gradients where v is near zero); running statistics at most 7.7e-12. A formula
# difference (another momentum form, the biased running variance, a missing weight decay term)
# shows at 1e-4 or more after one step. 1e-9 leaves two orders of magnitude above the worst
# figure and five below a real difference, and each check is shown to fail at ten times it.
const LOGIT_ATOL = 1e-4
const LOSS32_RTOL = 1e-5
const TRAJ_LOSS_RTOL = 1e-9
const TRAJ_WEIGHT_ATOL = 1e-9
const TRAJ_STATS_ATOL = 1e-9

"""Entries of `file` under "<prefix>/", keyed by the rest of the name."""
section(file, prefix) = Dict(k[length(prefix)+2:end] => v
                             for (k, v) in file if startswith(k, prefix * "/"))

"""Model names present in the file (the first path component of every key)."""
parity_models(file) = sort(unique(String(first(split(k, "/"))) for k in keys(file)))

"""One check's outcome: the figure, the tolerance it is held to, and whether it holds."""
struct Check
    figure::Float64
    tolerance::Float64
    ok::Bool
end
Check(figure, tolerance) = Check(figure, tolerance, figure <= tolerance)

max_abs_diff(a, b) = size(a) == size(b) ? Float64(maximum(abs.(a .- b))) : Inf
max_rel_diff(a, b) = length(a) == length(b) ?
    Float64(maximum(abs.(a .- b) ./ max.(abs.(b), 1e-12))) : Inf

"""Largest absolute difference over every array of `ref` (Inf if `got` lacks one or a size
differs): `got` and `ref` map canonical names to arrays."""
function max_abs_diff(got::AbstractDict, ref::AbstractDict)
    Set(keys(got)) == Set(keys(ref)) || return Inf
    all(length(got[k]) == length(ref[k]) for k in keys(ref)) || return Inf
    # reduce with init: `maximum(...; init)` needs Julia 1.6, CI runs 1.5
    return reduce(max, (max_abs_diff(reshape(got[k], size(ref[k])), ref[k]) for k in keys(ref));
                  init=0.0)
end

"""Names whose Knet-side size differs from PyTorch's (converted to Knet layout)."""
function shape_mismatches(arrays::AbstractDict, shapes::AbstractDict)
    Set(keys(arrays)) == Set(keys(shapes)) || return sort(collect(symdiff(keys(arrays), keys(shapes))))
    return sort([k for k in keys(shapes) if size(arrays[k]) != Tuple(Int.(vec(shapes[k])))])
end

"""The model `m` of `file` built as the Python backend builds it, on arrays of `atype`."""
function model_from(file, m, prefix, atype)
    strides = haskey(file, "$m/block_strides") ? vec(Int.(file["$m/block_strides"])) : Int[]
    # A plain CNN (LeNet-5) arrives with its op list, as the bytes of its text; a ResNet with strides.
    how = haskey(file, "$m/ops") ? (family="cnn", ops=String(UInt8.(vec(file["$m/ops"])))) : (family="resnet",)
    return build_model(m, section(file, "$prefix/param"), section(file, "$prefix/buffer"),
                       strides, atype; how...)
end

"""The optimizer settings of trajectory `opt` as init_state's keywords."""
function optimizer_keywords(hyper, opt)
    lr, momentum, weight_decay, beta1, beta2, eps = Float64.(vec(hyper))
    return (optimizer=opt, lr=lr, momentum=momentum, weight_decay=weight_decay,
            beta1=beta1, beta2=beta2, eps=eps)
end

"""Run the float64 trajectory `opt` of model `m`: (losses, final params, final buffers)."""
function run_trajectory(file, m, opt)
    atype = Array{Float64}
    state = init_state(model_from(file, m, "$m/traj", atype), atype;
                       optimizer_keywords(file["$m/traj/$opt/hyper"], opt)...)
    data = put_data(file["$m/traj/images"], vec(Int.(file["$m/traj/labels"])), atype)
    order = put_order(vec(Int.(file["$m/traj/order"])))
    batch_size = Int(first(file["$m/traj/batch_size"]))
    losses = [train_step!(state, data, order, step, batch_size)[2]
              for step in 0:Int(first(file["$m/traj/steps"]))-1]
    return (losses, export_weights(state)...)
end

"""Every check of model `m` against PyTorch's reference, by name (see the top of this file)."""
function parity_checks(file, m)
    checks = Dict{String,Check}()
    state = init_state(model_from(file, m, m, Array{Float32}), Array{Float32})
    params, buffers = export_weights(state)
    mismatched = shape_mismatches(merge(params, buffers), section(file, "$m/shape"))
    checks["shapes: mismatched arrays"] = Check(length(mismatched), 0)
    n_params = sum(length, KnetModels.model_params(state.model))
    checks["parameter count: |knet - torch|"] =
        Check(abs(n_params - Int(first(file["$m/n_params"]))), 0)

    x = Array{Float32}(file["$m/images"])
    labels = vec(Int.(file["$m/labels"]))
    checks["float32 eval logits: max abs diff"] =
        Check(max_abs_diff(forward(state, x; training=false), file["$m/logits_eval"]), LOGIT_ATOL)
    checks["float32 train logits: max abs diff"] =
        Check(max_abs_diff(forward(state, x; training=true), file["$m/logits_train"]), LOGIT_ATOL)
    checks["float32 loss: rel diff"] =
        Check(max_rel_diff([batch_loss(state.model, x, labels)], [first(file["$m/loss_train"])]),
              LOSS32_RTOL)

    for opt in TRAJECTORY_OPTIMIZERS
        haskey(file, "$m/traj/$opt/losses") || continue
        losses, final_params, final_buffers = run_trajectory(file, m, opt)
        checks["float64 $opt: max rel loss diff"] =
            Check(max_rel_diff(losses, vec(file["$m/traj/$opt/losses"])), TRAJ_LOSS_RTOL)
        checks["float64 $opt: max abs weight diff"] =
            Check(max_abs_diff(final_params, section(file, "$m/traj/$opt/final/param")),
                  TRAJ_WEIGHT_ATOL)
        if !isempty(final_buffers)
            checks["float64 $opt: max abs running-stat diff"] =
                Check(max_abs_diff(final_buffers, section(file, "$m/traj/$opt/final/buffer")),
                      TRAJ_STATS_ATOL)
        end
    end
    return checks
end

"""Print every figure and append it to the report file, if one is named."""
function report_checks(m, checks)
    report = get(ENV, "KNETMODELS_PARITY_REPORT", "")
    for name in sort(collect(keys(checks)))
        c = checks[name]
        line = join([m, name, string(c.figure), string(c.tolerance), string(c.ok)], '\t')
        println(replace(line, '\t' => "  "))
        isempty(report) || open(io -> println(io, line), report, "a")
    end
end

"""A copy of `file` with one value of `key` moved by `delta` (to show a check can fail)."""
function perturbed(file, key, delta)
    changed = copy(file)
    a = copy(file[key])
    a[1] += delta
    changed[key] = a
    return changed
end

function run_parity(path::AbstractString)
    file = npzread(path)
    for m in parity_models(file)
        @testset "parity with PyTorch: $m" begin
            checks = parity_checks(file, m)
            report_checks(m, checks)
            for (name, c) in sort(collect(checks); by=first)
                @test c.ok
            end
            @test length(checks) >= 5
        end
    end
end

"""Each kind of check fails when the reference moves by ten times its tolerance (or, for
shapes and counts, by one): proof that a passing figure means something."""
function run_parity_can_fail(path::AbstractString)
    file = npzread(path)
    m = "lenet5" in parity_models(file) ? "lenet5" : first(parity_models(file))
    @testset "each parity check can fail ($m)" begin
        @test !parity_checks(perturbed(file, "$m/n_params", 1), m)["parameter count: |knet - torch|"].ok
        shape_key = first(k for k in keys(file) if startswith(k, "$m/shape/"))
        @test !parity_checks(perturbed(file, shape_key, 1), m)["shapes: mismatched arrays"].ok
        @test !parity_checks(perturbed(file, "$m/logits_eval", 10LOGIT_ATOL), m)[
            "float32 eval logits: max abs diff"].ok
        @test !parity_checks(perturbed(file, "$m/logits_train", 10LOGIT_ATOL), m)[
            "float32 train logits: max abs diff"].ok
        for opt in TRAJECTORY_OPTIMIZERS
            haskey(file, "$m/traj/$opt/losses") || continue
            losses = file["$m/traj/$opt/losses"]
            @test !parity_checks(perturbed(file, "$m/traj/$opt/losses", 10TRAJ_LOSS_RTOL * abs(losses[1])),
                                 m)["float64 $opt: max rel loss diff"].ok
            wkey = first(k for k in keys(file) if startswith(k, "$m/traj/$opt/final/param/"))
            @test !parity_checks(perturbed(file, wkey, 10TRAJ_WEIGHT_ATOL), m)[
                "float64 $opt: max abs weight diff"].ok
        end
    end
    with_stats = [k for k in keys(file) if occursin(r"^[^/]+/traj/sgd/final/buffer/", k)]
    if !isempty(with_stats)
        key = first(sort(with_stats))
        b = String(first(split(key, "/")))
        @testset "the running-statistics check can fail ($b)" begin
            @test !parity_checks(perturbed(file, key, 10TRAJ_STATS_ATOL), b)[
                "float64 sgd: max abs running-stat diff"].ok
        end
    end
end
