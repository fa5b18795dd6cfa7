// CUB's batched top-k (cub::DeviceBatchedTopK::MaxPairs) as an anchor for bench/bench_gpu.py: the k largest float32
// keys of each row of a row-major rows x cols matrix, with their column indices, in ONE batched call (each row is a
// segment), optionally followed by CUB's segmented sort of the k results of each row.
//
// Built at bench time into a shared library (bench/anchors/cub_topk.py) against the CCCL headers that
// flashinfer-python's wheel vendors (flashinfer/data/cccl, CCCL 3.6: DeviceBatchedTopK is new in it) and called
// through ctypes with CuPy device pointers. No allocation here: the caller allocates the temporary storage once, of
// st_cub_topk_temp_bytes() bytes, and passes it to every st_cub_topk() call.
//
// What CUB gives, and so what the two modes time:
// - DeviceBatchedTopK only implements cuda::execution::output_ordering::unsorted (sorted and stable_sorted are
//   rejected at compile time in CCCL 3.6), so `sorted = 0` returns the right k pairs per row in no particular order.
// - `sorted = 1` adds cub::DeviceSegmentedSort::SortPairsDescending over the k pairs of each row (values descending;
//   equal values in no defined order, the sort is not stable): the time then includes that sort, which our kernels
//   and torch.topk do too.
// - `tie_break = 0` requests (determinism::not_guaranteed, tie_break::unspecified): when several items tie at the
//   k-th value, which of them are returned is unspecified. `tie_break = 1` requests (determinism::gpu_to_gpu,
//   tie_break::prefer_smaller_index): the returned set is then the one with the lower indices among equal values,
//   the set our oracle returns. CUB serves that request with its thread-block-cluster backend only (SM 9.0+).
//
// Rows of more than 2^21 columns are refused (cudaErrorInvalidValue): DeviceBatchedTopK's segment limit in CCCL 3.6.

// Without this, CCCL 3.6 rejects the tie_break = 1 request at compile time even for an sm_90a-only build (its host
// pass also instantiates the single-block backend, which cannot serve it). Defined, an unservable request returns
// cudaErrorNotSupported at run time instead; FlashInfer's cub_topk.cu defines it for the same reason.
#define CUB_DISABLE_TOPK_UNSUPPORTED_ARCH_ASSERT

#include <cuda/__execution/determinism.h>
#include <cuda/__execution/output_ordering.h>
#include <cuda/__execution/require.h>
#include <cuda/__execution/tie_break.h>
#include <cuda/std/__execution/env.h>

#include <cub/device/device_batched_topk.cuh>
#include <cub/device/device_segmented_sort.cuh>
#include <cub/version.cuh>
#include <cuda/argument>
#include <cuda/iterator>
#include <cuda/stream_ref>

#include <cstddef>
#include <cstdint>

namespace {

// DeviceBatchedTopK sizes its kernels and temporary storage from a compile-time bound on the segment size, and its
// documentation asks for the tightest one, so the runtime column count picks the smallest of four bounds: up to
// 8192 columns CUB may use its single-block backend (FlashInfer's own CUB path stops its ladder there too), above
// that the thread-block-cluster backend; 2^16 and 2^20 are the bench's row lengths, 2^21 is CUB's limit.
constexpr int64_t kBound0 = 8192, kBound1 = int64_t{1} << 16, kBound2 = int64_t{1} << 20;
constexpr int64_t kMaxCols = int64_t{1} << 21;
constexpr size_t kAlign = 256;

int64_t segment_bound(int64_t cols) {
  return cols <= kBound0 ? kBound0 : cols <= kBound1 ? kBound1 : cols <= kBound2 ? kBound2 : kMaxCols;
}

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// CUB carries the selected column as an int32 "value" beside each key; stored widened, as int64 (the bench's and
// torch.topk's index type), by the output iterator, with no extra kernel.
struct WidenIndex {
  __device__ int64_t operator()(int32_t i) const { return i; }
};

// One DeviceBatchedTopK::MaxPairs call (or, with temp == nullptr, its temporary-storage query) for a given bound
// and requirement set: rows segments of cols keys each, k largest per segment.
template <int64_t Bound, typename Requirements>
cudaError_t batched_topk(void* temp, size_t& temp_bytes, const float* x, float* values, int64_t* indices,
                         int64_t rows, int64_t cols, int64_t k, Requirements req, cudaStream_t stream) {
  auto keys_in = cuda::make_strided_iterator(cuda::make_counting_iterator(x), cols);
  auto keys_out = cuda::make_strided_iterator(cuda::make_counting_iterator(values), k);
  // each segment's values are its column numbers 0, 1, ..., cols - 1, generated, not read
  auto vals_in = cuda::make_constant_iterator(cuda::make_counting_iterator(int32_t{0}));
  auto widened = cuda::make_transform_output_iterator(indices, WidenIndex{});
  auto vals_out = cuda::make_strided_iterator(cuda::make_counting_iterator(widened), k);
  auto segment_size = cuda::args::immediate{cols, cuda::args::bounds<int64_t{1}, Bound>()};
  auto k_arg = cuda::args::immediate{k, cuda::args::bounds<int64_t{1}, Bound>()};
  auto num_segments = cuda::args::immediate{rows};
  auto env = cuda::std::execution::env{req, cuda::stream_ref{stream}};
  return cub::DeviceBatchedTopK::MaxPairs(temp, temp_bytes, keys_in, keys_out, vals_in, vals_out, segment_size,
                                          k_arg, num_segments, env);
}

template <typename Requirements>
cudaError_t topk_bounded(void* temp, size_t& temp_bytes, const float* x, float* values, int64_t* indices,
                         int64_t rows, int64_t cols, int64_t k, Requirements req, cudaStream_t stream) {
  switch (segment_bound(cols)) {
    case kBound0: return batched_topk<kBound0>(temp, temp_bytes, x, values, indices, rows, cols, k, req, stream);
    case kBound1: return batched_topk<kBound1>(temp, temp_bytes, x, values, indices, rows, cols, k, req, stream);
    case kBound2: return batched_topk<kBound2>(temp, temp_bytes, x, values, indices, rows, cols, k, req, stream);
    default: return batched_topk<kMaxCols>(temp, temp_bytes, x, values, indices, rows, cols, k, req, stream);
  }
}

cudaError_t topk(void* temp, size_t& temp_bytes, const float* x, float* values, int64_t* indices, int64_t rows,
                 int64_t cols, int64_t k, int tie_break, cudaStream_t stream) {
  namespace ex = cuda::execution;
  if (tie_break == 1) {
    return topk_bounded(temp, temp_bytes, x, values, indices, rows, cols, k,
                        ex::require(ex::determinism::gpu_to_gpu, ex::tie_break::prefer_smaller_index,
                                    ex::output_ordering::unsorted),
                        stream);
  }
  return topk_bounded(temp, temp_bytes, x, values, indices, rows, cols, k,
                      ex::require(ex::determinism::not_guaranteed, ex::tie_break::unspecified,
                                  ex::output_ordering::unsorted),
                      stream);
}

// The k pairs of each row sorted by value, descending. Segment r is [r * k, (r + 1) * k): the offsets are generated.
cudaError_t sort_rows(void* temp, size_t& temp_bytes, const float* keys_in, float* keys_out,
                      const int64_t* idx_in, int64_t* idx_out, int64_t rows, int64_t k, cudaStream_t stream) {
  auto begin = cuda::make_strided_iterator(cuda::make_counting_iterator(int64_t{0}), k);
  return cub::DeviceSegmentedSort::SortPairsDescending(temp, temp_bytes, keys_in, keys_out, idx_in, idx_out,
                                                       rows * k, rows, begin, begin + 1, stream);
}

// The temporary storage of one call: a scratch area used first by the top-k, then by the sort (never at once),
// and, when sorted, the unsorted top-k pairs between the two.
struct Layout {
  size_t scratch = 0, values = 0, indices = 0, total = 0;
};

cudaError_t layout(int64_t rows, int64_t cols, int64_t k, int tie_break, int sorted, Layout& out) {
  if (rows < 1 || cols < 1 || cols > kMaxCols || k < 1 || k > cols || (tie_break != 0 && tie_break != 1)) {
    return cudaErrorInvalidValue;
  }
  size_t topk_bytes = 0, sort_bytes = 0;
  cudaError_t err = topk(nullptr, topk_bytes, nullptr, nullptr, nullptr, rows, cols, k, tie_break, nullptr);
  if (err != cudaSuccess) return err;
  out.scratch = align_up(topk_bytes);
  if (sorted) {
    err = sort_rows(nullptr, sort_bytes, nullptr, nullptr, nullptr, nullptr, rows, k, nullptr);
    if (err != cudaSuccess) return err;
    if (align_up(sort_bytes) > out.scratch) out.scratch = align_up(sort_bytes);
    out.values = align_up(size_t(rows * k) * sizeof(float));
    out.indices = align_up(size_t(rows * k) * sizeof(int64_t));
  }
  out.total = out.scratch + out.values + out.indices;
  return cudaSuccess;
}

}  // namespace

extern "C" {

// CUB_VERSION of the headers this library was built against (300600 for CCCL 3.6.0).
int st_cub_version() { return CUB_VERSION; }

const char* st_cub_error_string(int err) { return cudaGetErrorString(static_cast<cudaError_t>(err)); }

// The compile-time bound on the segment size that rows of `cols` columns run under (see segment_bound).
int64_t st_cub_topk_segment_bound(int64_t cols) { return segment_bound(cols); }

// Bytes of temporary storage st_cub_topk needs for these arguments; a cudaError_t (0: success).
int st_cub_topk_temp_bytes(int64_t rows, int64_t cols, int64_t k, int tie_break, int sorted, size_t* bytes) {
  Layout l;
  cudaError_t err = layout(rows, cols, k, tie_break, sorted, l);
  *bytes = l.total;
  return err;
}

// The k largest of each row of x (float32, rows x cols, row-major, on the device) into values (float32, rows x k)
// and indices (int64, rows x k), enqueued on `stream`; temp holds temp_bytes >= st_cub_topk_temp_bytes(...).
// Returns a cudaError_t of the enqueueing (0: success); kernel faults surface at the next synchronization.
int st_cub_topk(const float* x, float* values, int64_t* indices, void* temp, size_t temp_bytes, int64_t rows,
                int64_t cols, int64_t k, int tie_break, int sorted, cudaStream_t stream) {
  Layout l;
  cudaError_t err = layout(rows, cols, k, tie_break, sorted, l);
  if (err != cudaSuccess) return err;
  if (temp_bytes < l.total) return cudaErrorInvalidValue;
  char* base = static_cast<char*>(temp);
  size_t scratch_bytes = l.scratch;
  if (!sorted) {
    return topk(base, scratch_bytes, x, values, indices, rows, cols, k, tie_break, stream);
  }
  float* tmp_values = reinterpret_cast<float*>(base + l.scratch);
  int64_t* tmp_indices = reinterpret_cast<int64_t*>(base + l.scratch + l.values);
  err = topk(base, scratch_bytes, x, tmp_values, tmp_indices, rows, cols, k, tie_break, stream);
  if (err != cudaSuccess) return err;
  scratch_bytes = l.scratch;
  return sort_rows(base, scratch_bytes, tmp_values, values, tmp_indices, indices, rows, k, stream);
}

}  // extern "C"
