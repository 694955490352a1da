//! Random search: the baseline, with the same evaluation budget as evolution.
use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::Judge;
use crate::progress::Progress;

/// Evaluates up to `budget` distinct admissible children drawn uniformly.
pub fn run(
    judge: &mut Judge<'_>,
    budget: usize,
    seed: u64,
    progress: &Progress,
    mut checkpoint: impl FnMut(&Judge<'_>) -> Result<()>,
) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let bar = progress.bar(budget as u64, "search");
    let mut attempts = 0;
    while judge.evaluated.len() < budget && attempts < budget * 50 {
        attempts += 1;
        let arch = judge.space.sample_child(&mut rng);
        if judge.is_evaluated(&arch) || !judge.admissible(&arch) {
            continue;
        }
        judge.evaluate(&arch, 0);
        bar.inc(1);
        if judge.evaluated.len().is_multiple_of(50) {
            checkpoint(judge)?;
        }
    }
    bar.finish_and_clear();
    Ok(())
}
