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
