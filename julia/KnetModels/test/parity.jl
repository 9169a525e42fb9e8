# Parity with PyTorch: weights, a batch and PyTorch's logits from an .npz (see runtests.jl for
# the keys), rebuilt here through the same build_model the Python backend uses.

"""Entries of `file` under "<model>/<section>/", keyed by the rest of the name."""
section(file, model, sec) = Dict(k[length("$model/$sec/")+1:end] => v
                                 for (k, v) in file if startswith(k, "$model/$sec/"))

"""Model names present in the file (the first path component of every key)."""
parity_models(file) = sort(unique(first(split(k, "/")) for k in keys(file)))

function run_parity(path::AbstractString)
    file = npzread(path)
    for kind in parity_models(file)
        @testset "parity: $kind" begin
            weights = section(file, kind, "param")
            buffers = section(file, kind, "buffer")
            strides = vec(Int.(file["$kind/block_strides"]))
            x = Array{Float32}(file["$kind/images"])
            labels = vec(Int.(file["$kind/labels"]))
            model = build_model(kind, weights, buffers, strides, ATYPE)
            @test model(x; training=false) ≈ file["$kind/logits_eval"] rtol=PARITY_TOL atol=PARITY_TOL
            @test model(x; training=true) ≈ file["$kind/logits_train"] rtol=PARITY_TOL atol=PARITY_TOL
            @test batch_loss(model, x, labels) ≈ file["$kind/loss_train"] rtol=PARITY_TOL
        end
    end
end
