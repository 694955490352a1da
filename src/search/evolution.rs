//! SPOS's evolutionary search (Guo et al., ECCV 2020): a population of children; each generation
//! keeps the `top_k` best evaluated so far and breeds the next population, half by mutation (each
//! choice point resampled from the shrunk space with probability `mutation_prob`) and half by
//! crossover (each choice point from one of two parents), through the space's hooks
//! (`pwsnas_models::SpaceDef`), which keep children valid in spaces with topology rules. Candidates
//! that break a constraint, or that were already evaluated, are redrawn.
use anyhow::Result;
use pwsnas_models::Arch;
use rand::seq::IndexedRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::Judge;
use crate::progress::Progress;
use crate::settings::SearchSettings;

const MAX_TRIES: usize = 100;

/// Draws up to `n` new admissible children with `make`, giving up after `MAX_TRIES × n` draws.
fn breed(
    judge: &mut Judge<'_>,
    n: usize,
    rng: &mut ChaCha8Rng,
    mut make: impl FnMut(&Judge<'_>, &mut ChaCha8Rng) -> Arch,
    out: &mut Vec<Arch>,
) {
    let mut made = 0;
    for _ in 0..n * MAX_TRIES {
        if made == n {
            break;
        }
        let child = make(judge, rng);
        if out.contains(&child) || judge.is_evaluated(&child) || !judge.admissible(&child) {
            continue;
        }
        out.push(child);
        made += 1;
    }
}

pub fn run(
    judge: &mut Judge<'_>,
    s: &SearchSettings,
    seed: u64,
    progress: &Progress,
    mut checkpoint: impl FnMut(&Judge<'_>) -> Result<()>,
) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let bar = progress.bar(s.generations as u64, "evolution");
    let mut population = Vec::new();
    breed(judge, s.population, &mut rng, |j, r| j.space.sample_child(r), &mut population);
    for generation in 0..s.generations {
        for arch in &population {
            judge.evaluate(arch, generation);
        }
        checkpoint(judge)?;
        let mut ranked: Vec<(f64, Arch)> = judge
            .evaluated
            .iter()
            .map(|e| (e.accuracy, judge.space.parse_arch(&e.arch).expect("evaluated archs parse")))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let top: Vec<Arch> = ranked.into_iter().take(s.top_k).map(|(_, a)| a).collect();
        let best = judge.evaluated.iter().map(|e| e.accuracy).fold(0.0, f64::max);
        bar.set_message(format!("best {best:.4}"));
        bar.inc(1);
        progress.event("search_generation", serde_json::json!({ "generation": generation, "best_accuracy": best, "evaluated": judge.evaluated.len() }));
        if generation + 1 == s.generations || top.is_empty() {
            break;
        }
        let mut next = Vec::new();
        let half = s.population / 2;
        breed(
            judge,
            half,
            &mut rng,
            |j, r| j.space.mutate(top.choose(r).expect("top"), s.mutation_prob, r),
            &mut next,
        );
        let want = s.population - next.len();
        breed(
            judge,
            want,
            &mut rng,
            |j, r| j.space.crossover(top.choose(r).expect("top"), top.choose(r).expect("top"), r),
            &mut next,
        );
        if next.is_empty() {
            break;
        }
        population = next;
    }
    bar.finish_and_clear();
    Ok(())
}
