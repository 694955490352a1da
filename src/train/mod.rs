//! Training: the SGD optimiser, the supernet samplers, one epoch of training shared by the supernet
//! and the retrained child, and checkpoints.
pub mod checkpoint;
pub mod epoch;
pub mod sampler;
pub mod sgd;

/// A seed derived from the run's seed, a purpose and an index (e.g. the epoch), so that each epoch's
/// randomness depends only on the run's seed and the epoch number. That is what makes a resumed run
/// identical to an uninterrupted one without saving generator states.
pub fn derive_seed(seed: u64, purpose: &str, index: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in purpose.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    let mut z = seed ^ h ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
