# Devices and data: where arrays live, moving the dataset there once, and waiting for the GPU.

"""
    array_type(device, T=Float32) -> Type
    array_type(device, dtype::AbstractString) -> Type

`CuArray{T}` for `"cuda"` (when CUDA.jl works here), else `Array{T}`. `T` is the element type
of the canonical weights: `Float32` for normal runs, `Float64` for pybench's parity trajectory;
from Python it comes as numpy's dtype name ("float32", "float64"). Everything built on an
`atype` computes in `eltype(atype)`. Chosen per call rather than through `Knet.array_type[]`
(always Float32), so `--device cpu` stays on the CPU even on a machine where Knet picked the
GPU at load time.
"""
function array_type(device::AbstractString, ::Type{T}=Float32) where {T<:AbstractFloat}
    if device == "cuda"
        CUDA.functional() || error("device cuda requested but CUDA.functional() is false")
        # Before pybench allocates anything: what the process's device memory is measured from.
        DEVICE_BASELINE[] < 0 && (DEVICE_BASELINE[] = device_bytes_in_use())
        return CuArray{T}
    end
    return Array{T}
end

# Device memory, as the driver reports it (cuMemGetInfo: in use on the device). CUDA.jl 3 keeps
# no peak counter, and its pool holds freed blocks for reuse while Julia's GC frees arrays
# lazily, so what Knet occupies is what the driver sees: sampled after every training step (a
# driver call of microseconds, no synchronisation), less what was in use before pybench's first
# allocation. It includes the pool's cached blocks (torch's `max_memory_reserved` is the
# comparable figure; torch reports `max_memory_allocated`, live tensors only), and another
# process on the same GPU would count too: the worker has the GPU to itself.
const DEVICE_BASELINE = Ref(-1)
const DEVICE_PEAK = Ref(0)

device_bytes_in_use() = Int(CUDA.total_memory() - CUDA.available_memory())

"""Record the device memory in use after a step (nothing on the CPU)."""
function note_device_memory!(atype::Type)
    atype <: CuArray && (DEVICE_PEAK[] = max(DEVICE_PEAK[], device_bytes_in_use()))
    return nothing
end

"""Peak device memory used by this process's pybench work, in bytes (0 before any CUDA step)."""
device_memory_peak() = max(DEVICE_PEAK[] - max(DEVICE_BASELINE[], 0), 0)

array_type(device::AbstractString, dtype::AbstractString) = array_type(device, element_type(dtype))

"""The Julia element type for a numpy dtype name."""
function element_type(dtype::AbstractString)
    dtype == "float32" && return Float32
    dtype == "float64" && return Float64
    error("unsupported dtype $dtype: KnetModels computes in float32 or float64")
end

"""
    to_device(x, atype) -> array of type `atype`

A copy of `x` (a Julia array, or a `PyArray` wrapping numpy memory) with element type
`eltype(atype)`, in `atype`. The host copy first makes the data contiguous Julia memory (and
converts the element type if needed), which the GPU upload requires.
"""
to_device(x, atype::Type) = convert(atype, Array{eltype(atype)}(x))

"""
    synchronize_device(atype)

Blocks until queued GPU work is done (kernels run asynchronously), so a clock read afterwards
measures finished work. A no-op on the CPU.
"""
synchronize_device(atype::Type) = (atype <: CuArray && CUDA.synchronize(); nothing)

"""The integer array type on the device of `atype` (labels, sample positions): `CuArray{Int}`
beside `CuArray{T}`, `Array{Int}` on the CPU."""
index_type(atype::Type) = atype <: CuArray ? CuArray{Int} : Array{Int}

"""Images and labels on the device: a training step gathers its batch there, with positions
that are on the device too (`EpochPlan`), so nothing crosses between host and device to pick a
batch, as in torch and JAX."""
struct DeviceData{A,L,P}
    images::A  # (W, H, C, N) UInt8 pixels (normalised per batch by `pixels`) or normalised images
    labels::L  # 1-based classes, or multi-label (findings, N) 0/1 targets of the element type; on the same device
    table::P   # `nothing`, or (256, C) normalised value of every pixel value, then the offsets
end

DeviceData(images, labels) = DeviceData(images, labels, nothing)

"""The element type the model sees: the pixel table's, or the normalised images'."""
input_eltype(data::DeviceData) = data.table === nothing ? eltype(data.images) : eltype(data.table[1])

"""A batch of images as the model takes it: UInt8 pixels through the pixel table (a gather, so
the values are those pybench's numpy table holds, bit for bit, as in torch and JAX), or
normalised images as they are. `table` is (values (256, C), offsets (1, 1, C, 1) = 256(c - 1)),
both on the device of the pixels."""
pixels(x, ::Nothing) = x
pixels(x::AbstractArray{UInt8,4}, table) = table[1][x .+ table[2]]

"""
    put_data(images, labels, atype) -> DeviceData

`images` is (W, H, C, N) (a no-copy `PyArray` view of numpy's (N, C, H, W) from Python), labels
1-based. Copied to the device once, outside any timed step: `to_device` first makes a host
`Array{eltype(atype)}` copy (contiguous Julia memory in the computing element type), then
uploads it; on the CPU the images stay in that host copy. Either way the images end up in
`atype`, so the data is always "on the device" (see `on_device`).
"""
put_data(images, labels, atype::Type) = DeviceData(to_device(images, atype), device_labels(labels, atype))

"""Labels on the device of `atype`: 1-based classes as integers, multi-label targets
((findings, N) 0/1) as the computing element type, which the binary cross-entropy multiplies."""
device_labels(labels::AbstractVector, atype::Type) = convert(index_type(atype), Vector{Int}(labels))
device_labels(labels::AbstractMatrix, atype::Type) = convert(atype, Array{eltype(atype)}(labels))

"""
    put_pixels(address, dims, labels, table, atype) -> DeviceData

UInt8 pixels (W, H, C, N) at host memory `address` (numpy's (N, C, H, W) uint8 array, which the
caller keeps alive for as long as the data is used), normalised per batch through `table`
((256, C), from pybench's `pixel_table`). On the GPU they are uploaded once as UInt8; on the CPU
the host memory is the device's, so the data wraps it without a copy: a memory-mapped cache
entry stays shared page cache, however many workers read it.
"""
function put_pixels(address::Integer, dims, labels, table, atype::Type)
    host = unsafe_wrap(Array, Ptr{UInt8}(UInt(address)), Tuple(Int.(dims)); own=false)
    images = atype <: CuArray ? CuArray(host) : host
    channels = size(host, 3)
    offsets = convert(index_type(atype), reshape(collect(1:256:256 * channels), 1, 1, channels, 1))
    return DeviceData(images, device_labels(labels, atype), (to_device(table, atype), offsets))
end

"""
    on_device(data) -> Bool

Whether `put_data` kept the images in the device's memory, so that a training step copies no
data from the host: always true, because `put_data` copies the whole dataset to `atype` (on the
CPU, host memory is the device's).
"""
on_device(data::DeviceData) = data.images isa CuArray || data.images isa Array

"""One epoch's plan: 1-based sample positions, on the device (a step slices its batch's
positions there and gathers the images and labels with them), and, when pybench schedules the
learning rate, the rate of each step (`nothing`: the state's `lr` at every step), on the host:
a step passes its rate to the update kernels as a scalar argument, which is no copy."""
struct EpochPlan{O}
    order::O
    lrs::Union{Nothing,Vector{Float64}}
    first_step::Int  # the run's step count at the epoch's first step (dropout's masks)
end

"""
    put_order(order, lrs=nothing, atype=Array{Float32}, first_step=0) -> EpochPlan

An epoch's 1-based sample positions, uploaded once to the device of `atype`, the learning
rate of each of its steps, and the run's step count at its first step.
"""
put_order(order, lrs=nothing, atype::Type=Array{Float32}, first_step::Integer=0) =
    EpochPlan(convert(index_type(atype), Vector{Int}(order)),
              lrs === nothing ? nothing : Vector{Float64}(lrs), Int(first_step))

"""1-based positions of batch `step` (0-based, as pybench counts steps) in `order`: a slice
made where `order` lives."""
function batch_positions(order::AbstractVector{Int}, step::Integer, batch_size::Integer)
    lo = step * batch_size + 1
    hi = min((step + 1) * batch_size, length(order))
    lo <= hi || error("step $step is past the end of an order of $(length(order)) samples")
    return order[lo:hi]
end

"""Images (W, H, C, B) and labels (1-based, or (findings, B) targets) of the samples at
`positions`, gathered on the device (CUDA.jl indexes a CuArray with a CuArray of positions in a
kernel)."""
select_batch(data::DeviceData, positions) =
    (pixels(data.images[:, :, :, positions], data.table), batch_labels(data.labels, positions))
batch_labels(labels::AbstractVector, positions) = labels[positions]
batch_labels(labels::AbstractMatrix, positions) = labels[:, positions]

"""The (W, H, C, B) inputs a step on 1-based `positions` feeds the model, on the host."""
batch_inputs(data::DeviceData, positions) = Array(select_batch(data, Vector{Int}(positions))[1])

"""
    matmul_seconds(n, atype) -> Float64

Seconds for one (n, n) * (n, n) product of `atype` (operands on the device, the device
synchronised before and after): pybench turns it into the machine's peak rate (pybench/peak.py).
"""
function matmul_seconds(n::Integer, atype::Type)
    a = convert(atype, randn(eltype(atype), n, n))
    a * a  # compiled and warmed outside the clock
    synchronize_device(atype)
    started = time_ns()
    a * a
    synchronize_device(atype)
    return (time_ns() - started) / 1e9
end
