//! Tuning of the C allocator that libtorch's CPU tensors come from (glibc's `malloc`).
//!
//! Why: a training step frees nearly every activation it allocated, and glibc then hands the top of
//! its heap back to the kernel (`M_TRIM_THRESHOLD`) and serves the next step's multi-megabyte
//! tensors with fresh `mmap`s (its dynamic `M_MMAP_THRESHOLD`): every step pays page faults and the
//! kernel zeroing pages again. Measured with `pwsnas bench darts-step --channels 8 --cells 1` on a
//! 2-core VM: 587 k minor page faults and 427 ms/step as glibc comes, 128 k and 226 ms/step with the
//! settings below (PyTorch eager, whose Python process keeps its heap, ran the same step in 256–322 ms
//! with 247–265 k faults). So the binary keeps what it freed, as a long training process should:
//! chunks under 32 MiB (glibc's largest mmap threshold on 64-bit) come from the heap, and the heap's
//! top is returned to the kernel only above 2 GiB. The environment's `GLIBC_TUNABLES` for these two
//! settings (`glibc.malloc.mmap_threshold`, `glibc.malloc.trim_threshold`) wins when it is set.

/// Sets the allocator up for training (see the module docs). Call once, first thing in `main`.
pub fn tune_for_training() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        let set = |name: &str, param: libc::c_int, value: libc::c_int| {
            if !tunables.contains(name) {
                // SAFETY: mallopt only changes allocator parameters; it is called before any thread
                // that allocates has started.
                unsafe { libc::mallopt(param, value) };
            }
        };
        set("glibc.malloc.mmap_threshold", libc::M_MMAP_THRESHOLD, 32 << 20);
        set("glibc.malloc.trim_threshold", libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
