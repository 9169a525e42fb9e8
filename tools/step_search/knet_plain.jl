# Training steps written in plain Knet, the way a Julia user would write them, without KnetModels:
# weights as `Param`s, `conv4(mode=1)`, Knet's own `batchnorm` and `bnmoments`, `nll`, `@diff`,
# one `Momentum` per Param, the whole loop inside Julia (no juliacall call per step). The
# step-variant search (tools/step_search) and the harness-overhead benchmark time them beside
# pybench's knet backend, so that a reader can tell Knet's cost from KnetModels' and the bridge's.
#
# Each loop takes Knet-layout arrays (images (W, H, C, N), 1-based labels and positions, weights
# by canonical name from pybench.backends.knet_layout) and returns (seconds per step, loss per
# step); the caller compares the first loss with the backend's, so a loop cannot win by
# computing something else. The CPU needs no synchronisation before the clock is read.
#
# The ResNet loop's running statistics follow Knet's own CPU rule (the biased batch variance),
# which KnetModels corrects to PyTorch's; it changes no loss of the first step and no step time.

"""LeNet-5: conv-relu-pool twice, three dense layers."""
function plain_lenet5_loop(images, labels, positions, weights, steps, batch, lr, momentum)
    # Julia arrays of concrete types first (the arguments arrive as numpy-backed arrays).
    x = Array{Float32}(images); y = Vector{Int}(labels); order = Vector{Int}(positions)
    names = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight",
             "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
    w = [Array{Float32}(weights[k]) for k in names]
    w[2] = reshape(w[2], 1, 1, :, 1); w[4] = reshape(w[4], 1, 1, :, 1)
    ps = [Param(a) for a in w]
    for p in ps; p.opt = Momentum(lr=lr, gamma=momentum); end
    net(x) = begin
        x = pool(relu.(conv4(ps[1], x; padding=2, mode=1) .+ ps[2]))
        x = pool(relu.(conv4(ps[3], x; mode=1) .+ ps[4]))
        x = relu.(ps[5] * mat(x) .+ ps[6])
        x = relu.(ps[7] * x .+ ps[8])
        ps[9] * x .+ ps[10]
    end
    return timed_loop(net, ps, x, y, order, steps, batch)
end

"""A ResNet with basic blocks; `blocks` is "prefix,stride;prefix,stride;..." in order (the
strides come from pybench.models.describe: the weights cannot tell them)."""
function plain_resnet_loop(images, labels, positions, weights, blocks, steps, batch, lr, momentum)
    x = Array{Float32}(images); y = Vector{Int}(labels); order = Vector{Int}(positions)
    spec = [(String(p), parse(Int, s)) for (p, s) in split.(split(blocks, ";"), ",")]
    conv = Dict{String,Param{Array{Float32,4}}}()
    bn = Dict{String,Param{Vector{Float32}}}()
    moments = Dict{String,Any}()
    addconv(name) = (conv[name] = Param(Array{Float32}(weights["$name.weight"])))
    function addbn(name)  # Knet keeps a BatchNorm's scale and shift in one [gamma; beta] vector
        bn[name] = Param(vcat(Vector{Float32}(weights["$name.weight"]),
                              Vector{Float32}(weights["$name.bias"])))
        c = length(weights["$name.weight"])  # running statistics start at mean 0, variance 1
        moments[name] = bnmoments(momentum=0.1, mean=zeros(Float32, 1, 1, c, 1),
                                  var=ones(Float32, 1, 1, c, 1))
    end
    addconv("conv1"); addbn("bn1")
    for (p, _) in spec
        addconv("$p.conv1"); addbn("$p.bn1"); addconv("$p.conv2"); addbn("$p.bn2")
        if haskey(weights, "$p.downsample.0.weight")
            addconv("$p.downsample.0"); addbn("$p.downsample.1")
        end
    end
    fcw = Param(Array{Float32}(weights["fc.weight"])); fcb = Param(Vector{Float32}(weights["fc.bias"]))
    ps = Param[values(conv)..., values(bn)..., fcw, fcb]
    for p in ps; p.opt = Momentum(lr=lr, gamma=momentum); end
    norm(name, x) = batchnorm(x, moments[name], bn[name]; training=true, eps=1f-5)
    function block(p, stride, x)
        h = relu.(norm("$p.bn1", conv4(conv["$p.conv1"], x; padding=1, stride=stride, mode=1)))
        h = norm("$p.bn2", conv4(conv["$p.conv2"], h; padding=1, mode=1))
        shortcut = haskey(conv, "$p.downsample.0") ?
            norm("$p.downsample.1", conv4(conv["$p.downsample.0"], x; stride=stride, mode=1)) : x
        return relu.(h .+ shortcut)
    end
    function net(x)
        x = relu.(norm("bn1", conv4(conv["conv1"], x; padding=1, mode=1)))
        for (p, stride) in spec; x = block(p, stride, x); end
        x = pool(x; window=(size(x, 1), size(x, 2)), mode=1)  # global average pool
        return fcw * mat(x) .+ fcb
    end
    return timed_loop(net, ps, x, y, order, steps, batch)
end

"""`steps` steps of SGD with momentum on consecutive batches of `order`, each timed."""
function timed_loop(net, ps, x, y, order, steps, batch)
    times, losses = Float64[], Float64[]
    for i in 1:steps
        t0 = time_ns()
        idx = order[(i - 1) * batch + 1:i * batch]
        J = @diff nll(net(x[:, :, :, idx]), y[idx])
        for p in ps; update!(p, grad(J, p)); end
        push!(times, (time_ns() - t0) / 1e9)
        push!(losses, value(J))
    end
    return times, losses
end
