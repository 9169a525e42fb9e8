# What ran: the versions of Julia and of the packages actually loaded, for pybench's records.

"""The `version` field of the Project.toml of the loaded package `mod` ("unknown" if absent).
`pkgversion` would say this directly, but it exists only from Julia 1.9 and pybench's CI runs
KnetModels on Julia 1.5."""
function loaded_version(mod::Module)
    path = pathof(mod)
    path === nothing && return "unknown"
    project = joinpath(dirname(dirname(path)), "Project.toml")
    isfile(project) || return "unknown"
    for line in eachline(project)
        m = match(r"^version\s*=\s*\"(.*)\"", line)
        m === nothing || return String(m[1])
    end
    return "unknown"
end

"""Julia's version and those of the loaded Knet, AutoGrad and CUDA.jl, by name."""
package_versions() = Dict("julia" => string(VERSION), "Knet" => loaded_version(Knet),
                          "AutoGrad" => loaded_version(Knet.AutoGrad),
                          "CUDA" => loaded_version(CUDA))

"""
    gpu_probe(max_capability::AbstractString) -> Dict{String,Any}

What pybench needs to decide whether Knet can use the GPU, asked in an order that touches CUDA
only as far as is safe: `functional` first (`CUDA.functional()`: a driver and a toolkit CUDA.jl
can use); only then the device's `name` and `capability` ("9.0"); and only for a capability up
to `max_capability` (what CUDA.jl 3.x's toolkits target) `smoke`: "" when a tiny convolution,
BatchNorm and gradient ran on the GPU, else the error. pybench's `knet_gpu_verdict` turns this
into "usable" or a one-line reason; on a machine without a GPU it is `functional => false`.
"""
function gpu_probe(max_capability::AbstractString)
    CUDA.functional() || return Dict{String,Any}("functional" => false)
    device = CUDA.device()
    capability = CUDA.capability(device)
    info = Dict{String,Any}("functional" => true, "name" => CUDA.name(device),
                            "capability" => "$(capability.major).$(capability.minor)")
    capability > VersionNumber(max_capability) && return info
    info["smoke"] = try
        w = Param(CuArray(randn(Float32, 3, 3, 1, 2)))
        bn = Param(CuArray(bnparams(Float32, 2)))
        x = CuArray(randn(Float32, 8, 8, 1, 4))
        J = @diff sum(batchnorm(conv4(w, x; padding=1, mode=1), bnmoments(), bn))
        g = grad(J, w)
        CUDA.synchronize()
        g === nothing ? "no gradient reached the convolution's weights" : ""
    catch e
        first(split(sprint(showerror, e), '\n'))
    end
    return info
end
