//! Prefetching, for the passes whose reads jump around memory: the flush's passes over
//! sorted rows ([`crate::parquet_files`], [`crate::parquet_strings`]) and the rollups'
//! aggregates ([`crate::rollup`]).

/// How far ahead of the item being read a pass prefetches (runs of sorted rows, spans of
/// a rollup): on the flush bench 4, 8 and 16 measured alike, none far from the others.
pub(crate) const AHEAD: usize = 8;

/// Asks the processor to bring the cache line holding `slice[i]` (if there is one) into
/// its caches, ahead of a read [`AHEAD`] items later. After the sort, a run of rows is a
/// trace or a span, each somewhere else in the flush's input batches, and without a hint
/// each of its columns' reads waits on memory (the flush is bound by that, not by
/// instructions); a rollup's aggregates are likewise read in no order. Only a hint: it
/// reads nothing into the program and cannot fault. A no-op off x86_64.
#[inline(always)]
pub(crate) fn prefetch<T>(slice: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = slice.get(i) {
        // The crate's second `unsafe` block (the first builds checked string arrays in
        // `decode::columns`): `_mm_prefetch` is an `unsafe` intrinsic only because it takes
        // a raw pointer, which it never dereferences; this one points into `slice`.
        #[allow(unsafe_code)]
        // SAFETY: a prefetch has no effect on memory or on the program's state.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (x as *const T).cast::<i8>(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (slice, i);
}
